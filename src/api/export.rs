//! `GET /v1/export` (streamed NDJSON) and `POST /v1/export/dossier` (auditor).

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::limits::{ConnectionSocket, ExportSlot};
use super::log::fresh_checkpoint;
use super::AppState;
use crate::domain::access::TenantId;
use crate::domain::person::names_a_person;
use crate::error::{ApiError, Problem};
use crate::services::export::{write_dossier, ExportError, ExportPieces, ExportSpec};
use crate::store::audit::AuditKind;
use crate::store::log::{self, CheckpointRow};
use crate::store::subjects::newest_live_subject;
use crate::store::DbConn;
use actix_web::middleware::from_fn;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tokio::sync::mpsc::error::SendTimeoutError;
use tracing::Instrument;
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
    #[param(inline)]
    pub openings: Option<OpeningsMode>,
    /// A stored checkpoint's size; default the latest (signed now if the tree grew).
    pub size: Option<u64>,
}

async fn checkpoint_for(
    state: &AppState,
    tenant: &TenantId,
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

/// Streams the pieces `next` gives, each read on a pooled connection
/// taken for that piece only, while holding an export slot. A client that
/// takes no piece for the drain timeout is cut off: the stream ends, the
/// slot is freed and its socket is shut down.
fn stream<P>(
    state: web::Data<AppState>,
    request: &HttpRequest,
    slot: ExportSlot,
    mut next: P,
) -> HttpResponse
where
    P: FnMut(&mut DbConn) -> Result<Option<Vec<u8>>, ExportError> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let socket = request.conn_data::<ConnectionSocket>().copied();
    let drain = state.guards.limits.export_drain_timeout;
    let span = tracing::Span::current();
    actix_web::rt::spawn(
        async move {
            let _slot = slot;
            loop {
                let read = state
                    .db(move |conn| {
                        let piece = next(conn);
                        Ok((piece, next))
                    })
                    .await;
                let piece = match read {
                    Ok((Ok(Some(piece)), back)) => {
                        next = back;
                        piece
                    }
                    Ok((Ok(None), _)) => return,
                    Ok((Err(e), _)) => return fail(&sender, drain, e.to_string()).await,
                    Err(e) => return fail(&sender, drain, e.to_string()).await,
                };
                match sender.send_timeout(Ok(Bytes::from(piece)), drain).await {
                    Ok(()) => {}
                    Err(SendTimeoutError::Closed(_)) => return,
                    Err(SendTimeoutError::Timeout(_)) => {
                        tracing::warn!(
                            drain_timeout_s = drain.as_secs_f64(),
                            "export cut off: the client stopped reading"
                        );
                        if let Some(socket) = socket.filter(|_| !sender.is_closed()) {
                            socket.shut_down();
                        }
                        return;
                    }
                }
            }
        }
        .instrument(span),
    );
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body)
}

/// Ends a stream part-way with an error, so the client sees a cut body.
async fn fail(
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    drain: std::time::Duration,
    cause: String,
) {
    tracing::error!(%cause, "export failed part-way; the stream is cut short");
    let _ = sender
        .send_timeout(Err(std::io::Error::other("export failed")), drain)
        .await;
}

/// Export the log
///
/// The whole log as NDJSON with openings and checkpoints, for offline
/// verification.
#[utoipa::path(
    tag = "log",
    params(ExportQuery),
    responses(
        (status = 200, description = "NDJSON: a header, one line per entry from seq 0, then the checkpoint at tree_size", content_type = "application/x-ndjson", body = String),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/export", wrap = "from_fn(auth::auditor)")]
pub async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ExportQuery>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let slot = state.guards.export_slot(&caller.tenant.id)?;
    let openings = !matches!(query.openings, Some(OpeningsMode::None));
    let spec = spec_for(&state, &caller, query.size, openings).await?;
    tracing::info!(tenant = %spec.tenant, key_id = %caller.key_id, tree_size = spec.tree_size, openings, "export");
    let details = serde_json::json!({"tree_size": spec.tree_size, "openings": openings});
    caller.note(&state, AuditKind::ExportRead, details).await;
    let mut pieces = ExportPieces::new(spec);
    Ok(stream(state, &request, slot, move |conn| {
        pieces.next_piece(conn)
    }))
}

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DossierRequest {}
}

/// Export a person's dossier
///
/// Every entry of one number's or user id's groups, with openings and proofs,
/// as NDJSON.
#[utoipa::path(
    tag = "log",
    request_body = DossierRequest,
    responses(
        (status = 200, description = "NDJSON: the header (filtered), the number's entries each with an inclusion proof, the checkpoint", content_type = "application/x-ndjson", body = String),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/export/dossier", wrap = "from_fn(auth::auditor)")]
pub async fn dossier(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<DossierRequest>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let asked = &body.value;
    let identity = asked.identity(caller.tenant.policy.default_region())?;
    let slot = state.guards.export_slot(&caller.tenant.id)?;
    let spec = spec_for(&state, &caller, None, true).await?;
    tracing::info!(tenant = %spec.tenant, key_id = %caller.key_id, "dossier");
    let (tenant, asked) = (caller.tenant.id.clone(), identity.clone());
    let master = state.master.clone();
    let subject = state
        .db(move |conn| Ok(newest_live_subject(conn, &master, &tenant, asked.as_str())?))
        .await?
        .map(|s| s.commitment);
    let master = state.master.clone();
    let details = serde_json::json!({"tree_size": spec.tree_size, "subject": subject});
    caller.note(&state, AuditKind::DossierRead, details).await;
    // One group's history: read whole in one snapshot, then streamed.
    let mut spec = Some(spec);
    Ok(stream(state, &request, slot, move |conn| {
        let Some(spec) = spec.take() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        conn.snapshot(|conn| {
            let group = newest_live_subject(conn, &master, &spec.tenant, identity.as_str())?
                .map(|s| s.group_id);
            write_dossier(conn, &spec, group, &mut out)
        })?;
        Ok(Some(out))
    }))
}
