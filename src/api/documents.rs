//! `POST /v1/documents` (collector) and `GET /v1/documents/{id}` (auditor):
//! scans of signed paper forms (docs/recording.md), PDF, JPEG or PNG by their
//! content, at most 20 MiB, kept in the database so every instance serves
//! them. Both hold the bytes in memory only within the service's budget for
//! bodies (`api/body.rs`): an upload while it is read and written, a read
//! until it is sent.

use super::auth::{self, Caller};
use super::body::{declared_length, read_body};
use super::idempotent::{self, IdempotencyKeyHeader};
use super::limits::ConnectionSocket;
use super::AppState;
use crate::domain::document::{is_document_id, MediaType, MAX_DOCUMENT_BYTES};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::keys::new_document_id;
use crate::ledger::hash::sha256_hex;
use crate::services::documents::{self as service, Kept};
use crate::store::audit::AuditKind;
use crate::store::documents::{self, NewDocument};
use actix_web::body::SizedStream;
use actix_web::middleware::from_fn;
use actix_web::web::Bytes;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::OwnedSemaphorePermit;
use utoipa::ToSchema;

/// A document kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentCreated {
    /// `doc_<12 hex>`: what a paper opt-in names as `evidence.document_id`.
    #[schema(example = "doc_4f1c2a9b7e30")]
    pub document_id: String,
    /// Hex SHA-256 of the bytes: the paper opt-in's `evidence.document_sha256`.
    pub sha256: String,
}

fn not_a_document() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "a document is a PDF, JPEG or PNG (told by its content)",
    )
}

/// Upload a document
///
/// A scan of a signed paper form (PDF, JPEG or PNG, told by its content),
/// kept for paper opt-ins' evidence to name.
#[utoipa::path(
    tag = "documents",
    request_body(content = String, description = "The scan itself, its bytes as they are (PDF, JPEG or PNG, told by its content; at most 20 MiB)", content_type = "application/octet-stream"),
    params(IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Kept", body = DocumentCreated),
        (status = 413, description = "Larger than 20 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a PDF, JPEG or PNG", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "`document_quota_exceeded`: the tenant's documents would take more than its storage quota; nothing kept", body = Problem, content_type = "application/problem+json"),
        (status = "5XX", description = "Problem on our side: `internal`, or `not_ready`/`busy`/`overloaded` (retry)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/documents", wrap = "from_fn(auth::collector)")]
pub async fn upload_document(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let declared = declared_length(&req);
    let body = read_body(
        &state,
        payload,
        declared,
        MAX_DOCUMENT_BYTES,
        ErrorCode::MalformedBody,
    )
    .await?;
    let media_type = MediaType::sniff(&body).ok_or_else(not_a_document)?;
    let sha256 = sha256_hex(&body);
    let tenant = caller.tenant.id.clone();
    let clock = state.clock.clone();
    let quota = state.settings.document_quota_bytes;
    let digest = sha256.clone();
    idempotent::run(
        idempotent::Request::new(&state, &req, &caller, "documents", &sha256),
        move |conn, scope| {
            let now = clock.now().millis();
            let id = new_document_id();
            let created = serde_json::to_string(&DocumentCreated {
                document_id: id.clone(),
                sha256: digest.clone(),
            })
            .expect("serialisable");
            let document = NewDocument {
                id: &id,
                sha256: &digest,
                media_type,
                body: &body,
            };
            let reply = scope.map(|scope| Kept {
                scope,
                body: &created,
            });
            service::keep(conn, &tenant, (&document, quota), reply, now)?;
            tracing::info!(tenant = %tenant, document = %id, bytes = body.len(), "document kept");
            Ok((201, created))
        },
    )
    .await
}

/// Read a document
///
/// The document's bytes, for an auditor (noted in the audit trail).
#[utoipa::path(
    tag = "documents",
    params(("id" = String, Path, description = "The document id, `doc_<12 hex>`", pattern = "^doc_[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The document as uploaded, with its media type", content(
            (String = "application/pdf"),
            (String = "image/jpeg"),
            (String = "image/png")
        )),
        (status = "4XX", description = "Problem (404: no such document in this tenant, or erased)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/documents/{id}", wrap = "from_fn(auth::auditor)")]
pub async fn get_document(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let missing = || ApiError::not_found("no such document in this tenant");
    if !is_document_id(&id) {
        return Err(missing());
    }
    let (tenant, wanted) = (caller.tenant.id.clone(), id.clone());
    let found = state
        .db(move |conn| Ok(documents::info(conn, &tenant, &wanted)?))
        .await?
        .ok_or_else(missing)?;
    // The bytes are read only within the memory budget of bodies, and held
    // against it until they are sent.
    let memory = state
        .guards
        .body_memory(usize::try_from(found.size).unwrap_or(usize::MAX))
        .ok_or_else(overloaded)?;
    let (tenant, wanted) = (caller.tenant.id.clone(), id.clone());
    let body = state
        .db(move |conn| Ok(documents::body(conn, &tenant, &wanted)?))
        .await?
        .ok_or_else(missing)?;
    let details = serde_json::json!({"document_id": id, "sha256": found.sha256});
    caller.note(&state, AuditKind::DocumentRead, details).await;
    let size = body.len() as u64;
    Ok(HttpResponse::Ok()
        .content_type(found.media_type)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{id}\""),
        ))
        .body(SizedStream::new(size, send(&state, &req, body, memory))))
}

fn overloaded() -> ApiError {
    crate::metrics::refused("body_memory");
    ApiError::new(
        ErrorCode::Overloaded,
        "the memory for request bodies and documents being sent is taken; retry shortly",
    )
    .retry_after(1)
}

/// The pieces a document is sent in.
const PIECE: usize = 64 << 10;

/// Sends `body` in pieces, holding `memory` until the last is taken. A
/// client that takes no piece for the drain timeout (the exports' setting)
/// is cut off: its socket is shut down and the memory given back.
fn send(
    state: &AppState,
    req: &HttpRequest,
    body: Vec<u8>,
    memory: OwnedSemaphorePermit,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let socket = req.conn_data::<ConnectionSocket>().copied();
    let drain = state.guards.limits.export_drain_timeout;
    actix_web::rt::spawn(async move {
        let _memory = memory;
        // Each piece a copy: the whole body is freed with the permit.
        for piece in body.chunks(PIECE) {
            match sender
                .send_timeout(Ok(Bytes::copy_from_slice(piece)), drain)
                .await
            {
                Ok(()) => {}
                Err(SendTimeoutError::Closed(_)) => return,
                Err(SendTimeoutError::Timeout(_)) => {
                    tracing::warn!(
                        drain_timeout_s = drain.as_secs_f64(),
                        "document read cut off: the client stopped reading"
                    );
                    if let Some(socket) = socket.filter(|_| !sender.is_closed()) {
                        socket.shut_down();
                    }
                    return;
                }
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
