//! `GET /v1/audit-events` (admin): the tenant's audit trail, oldest first,
//! paginated by the events' numbers (`trail.rs` adds to it).

use super::auth::{self, Caller};
use super::paging::page_limit;
use super::AppState;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::store::audit as store;
use actix_web::middleware::from_fn;
use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events numbered above this (the previous page's `next_after`).
    pub after: Option<i64>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One event of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Numbered from 1 per tenant, without gaps, in the order recorded.
    pub seq: i64,
    pub at: Timestamp,
    /// A key id, `operator` (the API's operator token), `operator:cli`
    /// (the command line), `system:retention`, `webhook:whatsapp`,
    /// `webhook:twilio`, or for failed authentications `unauthenticated`.
    pub actor: String,
    /// `tenant.created`, `key.created`, `key.revoked`, `brand.created`,
    /// `brand.retired`, `form.saved`, `channels.changed`,
    /// `settings.changed`, `export.read`, `dossier.read`, `openings.read`,
    /// `dead_letter.read`, `document.read`, `reviews.read`,
    /// `review.settled`, `statements.read`, `changes.read`,
    /// `changes_key.read`, `event_endpoint.created`,
    /// `event_endpoint.deleted`, `event_delivery.retried`,
    /// `entry_point.created`, `ivr_flow.saved`, `subject.erased`, `backfill`, `import.recorded` (a group of lines
    /// of a bulk import: its id, lines and seqs),
    /// `authentication.failed`, `authorization.refused`,
    /// `webhook.signature_failed`, `signing_key.rotated`.
    pub kind: String,
    /// What it concerned: ids, names, settings (secrets redacted), subject
    /// commitments; never a number, key, salt, secret or evidence body.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub audit_events: Vec<AuditEventView>,
    /// Pass as `after` for the next page; null when this page is the last.
    pub next_after: Option<i64>,
}

/// Read the audit trail
///
/// The tenant's append-only audit trail, oldest first, paged by `after` and
/// `limit`: keys, settings, reads of openings, exports, erasures, failed
/// authentications.
#[utoipa::path(
    tag = "tenants",
    params(AuditQuery),
    responses(
        (status = 200, description = "Audit events, oldest first", body = AuditPage),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/audit-events", wrap = "from_fn(auth::admin)")]
pub async fn audit_events(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = query.after.unwrap_or(0);
    let tenant = caller.tenant.id;
    let rows = state
        .db(move |conn| Ok(store::list(conn, &tenant, after, limit + 1)?))
        .await?;
    let more = rows.len() as i64 > limit;
    let events: Vec<AuditEventView> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| AuditEventView {
            seq: r.seq,
            at: Timestamp::from_millis(r.at),
            actor: r.actor,
            kind: r.kind,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    let next_after = more.then(|| events.last().map(|e| e.seq)).flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        audit_events: events,
        next_after,
    }))
}
