//! `POST /v1/documents` (collector) and `GET /v1/documents/{id}` (auditor):
//! scans of signed paper forms (SPEC section 8), PDF, JPEG or PNG by their
//! content, at most 20 MiB, kept in the database so every instance serves
//! them.

use super::auth::{self, Caller};
use super::body::{declared_length, read_body};
use super::idempotent;
use super::AppState;
use crate::domain::document::{is_document_id, MediaType, MAX_DOCUMENT_BYTES};
use crate::error::{ApiError, ErrorCode, Problem};
use crate::keys::new_document_id;
use crate::ledger::hash::sha256_hex;
use crate::store::audit::AuditKind;
use crate::store::documents::{self, NewDocument};
use crate::store::idempotency;
use crate::store::{Rejection, StoreError};
use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
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

#[utoipa::path(
    tag = "documents",
    request_body(content = String, description = "The scan itself, its bytes as they are (PDF, JPEG or PNG, told by its content; at most 20 MiB)", content_type = "application/octet-stream"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first answer is replayed for 24 h; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$")),
    responses(
        (status = 201, description = "Kept", body = DocumentCreated),
        (status = 413, description = "Larger than 20 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a PDF, JPEG or PNG", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
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
    let digest = sha256.clone();
    idempotent::run(
        &state,
        &req,
        &caller,
        "documents",
        &sha256,
        move |conn, scope| {
            let now = clock.now().millis();
            let id = new_document_id();
            let created = serde_json::to_string(&DocumentCreated {
                document_id: id.clone(),
                sha256: digest.clone(),
            })
            .expect("serialisable");
            conn.immediate_transaction(|conn| {
                let document = NewDocument {
                    id: &id,
                    sha256: &digest,
                    media_type,
                    body: &body,
                };
                documents::insert(conn, &tenant, &document, now)?;
                if let Some(scope) = scope {
                    if !idempotency::finish(conn, scope, 201, &created, None, now)? {
                        return Err(StoreError::Rejected(Rejection::IdempotencyLost).into());
                    }
                }
                Ok::<_, ApiError>(())
            })?;
            tracing::info!(tenant = %tenant, document = %id, bytes = body.len(), "document kept");
            Ok((201, created))
        },
    )
    .await
}

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
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let missing = || ApiError::not_found("no such document in this tenant");
    if !is_document_id(&id) {
        return Err(missing());
    }
    let tenant = caller.tenant.id.clone();
    let wanted = id.clone();
    let found = state
        .db(move |conn| Ok(documents::find(conn, &tenant, &wanted)?))
        .await?
        .ok_or_else(missing)?;
    let details = serde_json::json!({"document_id": id, "sha256": found.sha256});
    caller.note(&state, AuditKind::DocumentRead, details).await;
    Ok(HttpResponse::Ok()
        .content_type(found.media_type)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{id}\""),
        ))
        .body(found.body))
}
