//! `GET /v1/entries/{seq}` (auditor): an entry exactly as hashed, its leaf
//! hash and the openings of its commitments.

use super::auth::{self, Caller};
use super::AppState;
use crate::error::{ApiError, Problem};
use crate::ledger::entry::Openings;
use crate::store::audit::AuditKind;
use crate::store::consent::{entry_at, StoredEntry};
use actix_web::middleware::from_fn;
use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// An entry with its leaf hash and openings.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    /// The entry: its bytes are exactly the RFC 8785 JSON that was hashed.
    #[schema(value_type = crate::ledger::entry::Entry)]
    pub entry: Box<RawValue>,
    pub leaf_hash: String,
    pub openings: Openings,
}

impl TryFrom<StoredEntry> for EntryView {
    type Error = ApiError;
    fn try_from(stored: StoredEntry) -> Result<Self, ApiError> {
        Ok(Self {
            entry: RawValue::from_string(stored.canonical_json).map_err(ApiError::internal)?,
            leaf_hash: stored.leaf_hash,
            openings: stored.openings,
        })
    }
}

/// Read an entry
///
/// A ledger entry with its openings (subject and evidence) while they exist.
#[utoipa::path(
    tag = "ledger",
    params(("seq" = u64, Path, description = "0-based index in the tenant's log")),
    responses(
        (status = 200, description = "The entry and its openings", body = EntryView),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/entries/{seq}", wrap = "from_fn(auth::auditor)")]
pub async fn get_entry(
    state: web::Data<AppState>,
    caller: Caller,
    seq: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::not_found("no entry with this seq"))?;
    let tenant = caller.tenant.id.clone();
    let stored = state
        .db(move |conn| Ok(entry_at(conn, &tenant, seq)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no entry with this seq"))?;
    tracing::info!(tenant = %caller.tenant.id, key_id = %caller.key_id, seq, "entry read with openings");
    let details = json!({"via": "entry", "seq": seq});
    caller.note(&state, AuditKind::OpeningsRead, details).await;
    Ok(HttpResponse::Ok().json(EntryView::try_from(stored)?))
}
