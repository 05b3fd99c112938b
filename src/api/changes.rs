//! `GET /v1/changes` (subscriber): the change feed, long-polled with `wait`,
//! each read audited; `GET /v1/changes/key` (admin): the tenant's feed key
//! (docs/changes.md).

use super::auth::{self, Caller};
use super::paging::page_limit;
use super::AppState;
use crate::domain::change::{Change, Cursor};
use crate::error::{ApiError, Problem};
use crate::services::changes::{self, FeedPage};
use crate::store::audit::AuditKind;
use actix_web::middleware::from_fn;
use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};

/// How often a waiting read looks for new entries: a change committed on
/// any instance is answered within this of its commit.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The longest `wait`, in seconds.
const MAX_WAIT_SECS: i64 = 30;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// A `next_cursor` (or a change's `cursor`) from an earlier read; the
    /// log's start when absent.
    pub after: Option<String>,
    /// At most this many entries read (1–1000, default 100); a page may
    /// hold fewer changes.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Seconds to wait for a change when there is none yet (0–30, default
    /// 0): the answer comes as soon as one commits.
    #[param(minimum = 0, maximum = 30)]
    pub wait: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesPage {
    /// The changes, in log order.
    pub changes: Vec<Change>,
    /// Pass as `after` for what follows; stable across restarts and
    /// instances.
    pub next_cursor: String,
}

/// Read the change feed
///
/// The log's consent changes after a cursor, in log order: opt-ins,
/// opt-outs, lifted opt-outs, confirmations, closed groups and erasures,
/// each with every current identity of its group. With `wait`, an empty
/// read waits for the next change. Every read is in the audit trail.
#[utoipa::path(
    tag = "ledger",
    params(ChangesQuery),
    responses(
        (status = 200, description = "The changes after the cursor (none when the wait ended without one)", body = ChangesPage),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/changes", wrap = "from_fn(auth::subscriber)")]
pub async fn read_changes(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = match query.after.as_deref() {
        None => Cursor::START,
        Some(text) => Cursor::parse(text).ok_or_else(|| {
            ApiError::invalid_field("after", "invalid_cursor", "`after` is not a feed cursor")
        })?,
    };
    let wait = match query.wait.unwrap_or(0) {
        secs @ 0..=MAX_WAIT_SECS => Duration::from_secs(secs as u64),
        _ => {
            return Err(ApiError::invalid_field(
                "wait",
                "out_of_range",
                "`wait` is 0 to 30 seconds",
            ))
        }
    };
    let page = read_or_wait(&state, &caller, after, limit, Instant::now() + wait).await?;
    let details = serde_json::json!({
        "after": after.encode(),
        "next": page.next.encode(),
        "changes": page.changes.len(),
    });
    caller.note(&state, AuditKind::ChangesRead, details).await;
    Ok(HttpResponse::Ok().json(ChangesPage {
        next_cursor: page.next.encode(),
        changes: page.changes,
    }))
}

/// Reads from `after` until a read finds a change or the deadline passes;
/// entries that are no change (links) move the cursor on all the same.
async fn read_or_wait(
    state: &web::Data<AppState>,
    caller: &Caller,
    after: Cursor,
    limit: i64,
    deadline: Instant,
) -> Result<FeedPage, ApiError> {
    let mut from = after;
    loop {
        let tenant = caller.tenant.id.clone();
        let page = state
            .read(move |conn| Ok(changes::read(conn, &tenant, from, limit)?))
            .await?;
        let now = Instant::now();
        if !page.changes.is_empty() || now >= deadline {
            return Ok(page);
        }
        if page.next == from {
            tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
        }
        from = page.next;
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedKey {
    /// The key, 64 lowercase hex digits (32 bytes).
    pub key: String,
    /// `HMAC-SHA256`: an erasure's `identity_hashes` are the hex HMAC of
    /// each erased identity's UTF-8 (E.164 or user id) under this key.
    pub algorithm: String,
}

/// Read the feed key
///
/// The tenant's change feed key, to hand to subscribers: with it they find
/// an erased person among their own contacts from an erasure's
/// `identity_hashes`. The same on every instance; the read is audited.
#[utoipa::path(
    tag = "ledger",
    responses(
        (status = 200, description = "The tenant's feed key", body = FeedKey),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/changes/key", wrap = "from_fn(auth::admin)")]
pub async fn feed_key(state: web::Data<AppState>, caller: Caller) -> HttpResponse {
    let key = hex::encode(state.master.feed_key(caller.tenant.id.as_str()));
    caller
        .note(&state, AuditKind::ChangesKeyRead, serde_json::json!({}))
        .await;
    HttpResponse::Ok().json(FeedKey {
        key,
        algorithm: "HMAC-SHA256".to_owned(),
    })
}
