//! `GET /v1/dead-letters` and `/v1/dead-letters/{id}` (admin): what the
//! webhooks could not apply, and what each held.

use super::auth::{self, Caller};
use super::paging::page_limit;
use super::AppState;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::dead_letters as letters;
use crate::store::audit::AuditKind;
use crate::store::dead_letters::{list_dead_letters, DeadLetterRow};
use actix_web::middleware::from_fn;
use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Only letters with a larger id (the previous page's `next_after`).
    pub after: Option<i64>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Something a webhook could not apply. Its content stays sealed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    /// `whatsapp` or `twilio`.
    pub provider: String,
    /// `unknown_phone_number_id`, `unknown_sender`, `timestamp_in_future`, …
    pub reason: String,
    /// The business number it was sent to (phone number id or Twilio number).
    pub phone_number_id: Option<String>,
    pub received_at: Timestamp,
    /// When a kept opt-out was applied (its business number configured, or
    /// its user id resolved); null while it waits or holds no opt-out.
    pub resolved_at: Option<Timestamp>,
    /// The entry that applied it.
    pub resolved_seq: Option<u64>,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(r: DeadLetterRow) -> Self {
        Self {
            id: r.id,
            provider: r.provider,
            reason: r.reason,
            phone_number_id: r.phone_number_id,
            received_at: Timestamp::from_millis(r.received_at),
            resolved_at: r.resolved_at.map(Timestamp::from_millis),
            resolved_seq: r.resolved_seq.map(|s| s as u64),
        }
    }
}

/// A dead letter with what it held, unsealed (admins only).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// What arrived, as kept: the message (sender, business number, time,
    /// text or button payload) or preference, or the statuses, reactions
    /// and system messages of an unknown business number.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page; null when this page is the last.
    pub next_after: Option<i64>,
}

/// List dead letters
///
/// What the webhooks could not apply, oldest first; a kept opt-out applies by
/// itself once it can.
#[utoipa::path(
    tag = "channels",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "Dead letters, oldest first", body = DeadLetterPage),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/dead-letters", wrap = "from_fn(auth::admin)")]
pub async fn dead_letters(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<DeadLetterQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = query.after.unwrap_or(0);
    let tenant = caller.tenant.id;
    let rows = state
        .db(move |conn| Ok(list_dead_letters(conn, &tenant, after, limit + 1)?))
        .await?;
    let more = rows.len() as i64 > limit;
    let letters: Vec<DeadLetter> = rows
        .into_iter()
        .take(limit as usize)
        .map(DeadLetter::from)
        .collect();
    let next_after = more.then(|| letters.last().map(|l| l.id)).flatten();
    Ok(HttpResponse::Ok().json(DeadLetterPage {
        dead_letters: letters,
        next_after,
    }))
}

/// Read a dead letter
///
/// One dead letter with what it held, unsealed for the admin (noted in the
/// audit trail).
#[utoipa::path(
    tag = "channels",
    params(("id" = i64, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "The dead letter and its unsealed payload", body = DeadLetterDetail),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/dead-letters/{id}", wrap = "from_fn(auth::admin)")]
pub async fn dead_letter(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let id = id.into_inner();
    let master = state.master.clone();
    let detail = state
        .db(move |conn| {
            let (row, payload) = letters::open(conn, &master, &tenant, id)?
                .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
            let payload = payload.ok_or_else(|| {
                ApiError::internal("a dead letter does not open with this master key")
            })?;
            Ok(DeadLetterDetail {
                letter: DeadLetter::from(row),
                payload,
            })
        })
        .await?;
    tracing::info!(dead_letter = id, by = %caller.key_id, "dead letter read");
    let details = serde_json::json!({"id": id});
    caller
        .note(&state, AuditKind::DeadLetterRead, details)
        .await;
    Ok(HttpResponse::Ok().json(detail))
}
