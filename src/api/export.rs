//! `GET /v1/export` (streamed NDJSON) and `POST /v1/export/dossier` (auditor).

use super::auth::{Caller, Role};
use super::json::ApiJson;
use super::log::fresh_checkpoint;
use super::AppState;
use crate::error::{ApiError, Problem};
use crate::services::export::{write_dossier, write_export, ChannelWriter, ExportSpec};
use crate::store::consent::current_subject;
use crate::store::log::{self, CheckpointRow};
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpeningsMode {
    /// Every line carries its openings (the default).
    All,
    /// Integrity-only: `"openings": null`.
    None,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `none` for an integrity-only audit.
    pub openings: Option<OpeningsMode>,
    /// A stored checkpoint's size; default the latest (signed now if the tree grew).
    pub size: Option<u64>,
}

async fn checkpoint_for(
    state: &AppState,
    tenant: &str,
    size: Option<u64>,
) -> Result<CheckpointRow, ApiError> {
    match size {
        None => fresh_checkpoint(state, tenant).await,
        Some(size) => {
            let tenant = tenant.to_owned();
            state
                .db(move |conn| Ok(log::checkpoint_of_size(conn, &tenant, size)?))
                .await?
                .ok_or_else(|| ApiError::not_found("no checkpoint of this size was signed"))
        }
    }
}

async fn spec_for(
    state: &AppState,
    caller: &Caller,
    size: Option<u64>,
    openings: bool,
) -> Result<ExportSpec, ApiError> {
    let checkpoint = checkpoint_for(state, &caller.tenant.id, size).await?;
    let tenant = caller.tenant.id.clone();
    let size = checkpoint.size as u64;
    let verifier_key = state
        .db(move |conn| Ok(log::key_for_size(conn, &tenant, size)?.verifier_key))
        .await?;
    Ok(ExportSpec {
        tenant: caller.tenant.id.clone(),
        origin: caller.tenant.origin.clone(),
        tree_size: checkpoint.size as u64,
        checkpoint_note: checkpoint.note,
        verifier_key,
        openings,
    })
}

/// Streams what `produce` writes, from a blocking thread, in bounded memory.
fn stream<F>(state: &AppState, produce: F) -> HttpResponse
where
    F: FnOnce(&mut crate::store::DbConn, &mut ChannelWriter) -> Result<(), String> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let pool = state.pool.clone();
    let span = tracing::Span::current();
    actix_web::rt::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut writer = ChannelWriter::new(sender);
        let result = match pool.get() {
            Ok(mut conn) => {
                let result = produce(&mut conn, &mut writer);
                if result.is_err() {
                    // Drop the connection from the pool if its server is gone.
                    conn.check_after_failure();
                }
                result
            }
            Err(e) => Err(format!("pool: {e}")),
        };
        if let Err(cause) = result {
            tracing::error!(%cause, "export failed part-way; the stream is cut short");
            writer.fail(std::io::Error::other("export failed"));
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body)
}

#[utoipa::path(
    tag = "log",
    params(ExportQuery),
    responses(
        (status = 200, description = "NDJSON: a header, one line per entry from seq 0, then the checkpoint at tree_size", content_type = "application/x-ndjson", body = String),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/export")]
pub async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Auditor])?;
    let openings = !matches!(query.openings, Some(OpeningsMode::None));
    let spec = spec_for(&state, &caller, query.size, openings).await?;
    tracing::info!(tenant = %spec.tenant, key_id = %caller.key_id, tree_size = spec.tree_size, openings, "export");
    Ok(stream(&state, move |conn, writer| {
        conn.snapshot(|conn| write_export(conn, &spec, writer))
            .map_err(|e| e.to_string())
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DossierRequest {
    #[schema(example = "+4915112345678")]
    pub number: String,
    #[serde(default)]
    pub region: Option<String>,
}

#[utoipa::path(
    tag = "log",
    request_body = DossierRequest,
    responses(
        (status = 200, description = "NDJSON: the header (filtered), the number's entries each with an inclusion proof, the checkpoint", content_type = "application/x-ndjson", body = String),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/export/dossier")]
pub async fn dossier(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<DossierRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Auditor])?;
    let number = caller.parse_number(&body.value.number, body.value.region.as_deref())?;
    let spec = spec_for(&state, &caller, None, true).await?;
    tracing::info!(tenant = %spec.tenant, key_id = %caller.key_id, "dossier");
    Ok(stream(&state, move |conn, writer| {
        conn.snapshot(|conn| {
            let subject = current_subject(conn, &spec.tenant, &number)?.map(|(id, _)| id);
            write_dossier(conn, &spec, subject, writer)
        })
        .map_err(|e: crate::services::export::ExportError| e.to_string())
    }))
}
