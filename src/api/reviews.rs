//! `GET /v1/reviews` and `POST /v1/reviews/{id}` (admin): the ambiguous
//! messages waiting for a person's review, and settling one (docs/messages.md).

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::paging::page_limit;
use super::records::Recorded;
use super::AppState;
use crate::domain::policy::AmbiguousMode;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::reviews::{self, Decision, Settlement, MAX_NOTE_CHARS};
use crate::store::audit::AuditKind;
use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// Only items after this one (the previous page's `next_after`).
    pub after: Option<String>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// An ambiguous message waiting for review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewItem {
    /// The opt-out's seq (mode `opt_out`) or `rev_` and 12 hex (mode
    /// `review`).
    pub id: String,
    /// The message as the person wrote it.
    pub message: Option<String>,
    /// The number (E.164) or user id it came from.
    pub identity: Option<String>,
    pub received_at: Timestamp,
    /// The tenant's `ambiguous_messages` when it arrived: `opt_out` (it was
    /// recorded as an opt-out) or `review` (it recorded nothing).
    pub mode: AmbiguousMode,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewItem>,
    /// Pass as `after` for the next page; null when this page is the last.
    pub next_after: Option<String>,
}

/// List ambiguous messages to review
///
/// Messages that held an opt-out keyword among other words and no phrase, not
/// yet settled, oldest first.
#[utoipa::path(
    tag = "channels",
    params(ReviewQuery),
    responses(
        (status = 200, description = "Ambiguous messages not yet settled, oldest first", body = ReviewPage),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/reviews", wrap = "from_fn(auth::admin)")]
pub async fn list_reviews(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ReviewQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = query.into_inner().after;
    let tenant = caller.tenant.id.clone();
    let master = state.master.clone();
    let items = state
        .db(move |conn| {
            Ok(reviews::waiting(
                conn,
                &master,
                &tenant,
                after.as_deref(),
                limit + 1,
            )?)
        })
        .await?;
    let more = items.len() as i64 > limit;
    let reviews: Vec<ReviewItem> = items
        .into_iter()
        .take(limit as usize)
        .map(|w| ReviewItem {
            id: w.id,
            message: w.message,
            identity: w.identity,
            received_at: w.received_at,
            mode: w.mode,
        })
        .collect();
    let next_after = more.then(|| reviews.last().map(|r| r.id.clone())).flatten();
    let details = serde_json::json!({ "items": reviews.len() });
    caller.note(&state, AuditKind::ReviewsRead, details).await;
    Ok(HttpResponse::Ok().json(ReviewPage {
        reviews,
        next_after,
    }))
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    OptOut,
    NotAnOptOut,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// `opt_out`: the message withdrew consent; `not_an_opt_out`: it did not.
    pub decision: ReviewDecision,
    /// Why, at most 500 characters; kept in the entry's evidence.
    #[serde(default)]
    pub note: Option<String>,
}

/// What a settlement did.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettledReview {
    pub id: String,
    pub mode: AmbiguousMode,
    pub decision: String,
    /// The entry it appended (mode `opt_out` and `not_an_opt_out`: the
    /// `opt_out_lifted`; mode `review` and `opt_out`: the opt-out); null
    /// when it records nothing, or nothing is left to record (the opt-out
    /// was lifted meanwhile, or the identity erased).
    pub entry: Option<Recorded>,
}

/// Settle an ambiguous message
///
/// Decides once whether a message was an opt-out: lifts the opt-out it
/// recorded, or records it now, as the item's mode says.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "The review item's id")),
    request_body = SettleRequest,
    responses(
        (status = 200, description = "Settled, once", body = SettledReview),
        (status = "4XX", description = "Problem (404: no such item; 409 `review_settled`: settled already)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/reviews/{id}", wrap = "from_fn(auth::admin)")]
pub async fn settle_review(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ApiJson<SettleRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.value;
    if let Some(note) = &request.note {
        if note.chars().count() > MAX_NOTE_CHARS || note.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                "note",
                "invalid_value",
                "`note` is at most 500 characters, without control characters",
            ));
        }
    }
    let decision = match request.decision {
        ReviewDecision::OptOut => Decision::OptOut,
        ReviewDecision::NotAnOptOut => Decision::NotAnOptOut,
    };
    let id = id.into_inner();
    let tenant = caller.tenant.id.clone();
    let (master, clock, key_id) = (
        state.master.clone(),
        state.clock.clone(),
        caller.key_id.clone(),
    );
    let settling = id.clone();
    let settled = state
        .write(&caller.tenant.id, move |conn| {
            let settlement = Settlement {
                decision,
                note: request.note.as_deref(),
                key_id: &key_id,
            };
            Ok(reviews::settle(
                conn,
                &master,
                &tenant,
                (&settling, settlement),
                clock.now(),
            )?)
        })
        .await?;
    let answer = SettledReview {
        id,
        mode: settled.mode,
        decision: decision.as_str().to_owned(),
        entry: settled.appended.as_ref().map(Recorded::from),
    };
    let details = serde_json::json!({
        "id": answer.id,
        "mode": answer.mode,
        "decision": answer.decision,
        "seq": answer.entry.as_ref().map(|e| e.seq),
    });
    caller.note(&state, AuditKind::ReviewSettled, details).await;
    Ok(HttpResponse::Ok().json(answer))
}
