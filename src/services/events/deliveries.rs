//! Deliveries (docs/events.md). Each endpoint takes the change feed from
//! its position: every change of its types is queued as a delivery, in the
//! same transaction that moves the position on, so a crash loses none and
//! a second instance queues none twice. A due delivery is leased by one
//! instance at a time, only when no earlier delivery of its endpoint and
//! group is pending (in log order per group, one in flight), sent with a
//! fresh signature, and retried with exponential backoff for 24 hours,
//! then kept as failed until an admin retries it.

use super::endpoints::{signing_key, types_of};
use super::open_erased;
use super::send::Sent;
use crate::domain::access::TenantId;
use crate::domain::change::{Cursor, FeedIdentity};
use crate::domain::identity::Identity;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::providers::standard_webhooks;
use crate::services::changes;
use crate::services::error::ServiceResult;
use crate::store::events::{self, DeliveryRow, EndpointRow, NewDelivery, Outcome};
use crate::store::log::log_head;
use crate::store::{DbConn, Rejection};
use std::collections::HashMap;

/// How long an instance holds a delivery it sends (a delivery takes 10 s at
/// most): a killed instance's deliveries are sent again after this.
pub const LEASE_MILLIS: i64 = 15_000;
/// How long a delivery is retried before it is kept as failed.
pub const RETRY_FOR_MILLIS: i64 = 24 * 3600 * 1000;
/// How long an erasure's identities are kept for a delivery not made.
pub const KEEP_ERASED_MILLIS: i64 = 7 * 24 * 3600 * 1000;
/// The first retry's delay; each next one doubles, up to an hour.
const FIRST_RETRY_MILLIS: i64 = 5_000;
const LONGEST_RETRY_MILLIS: i64 = 3600 * 1000;
/// Entries of the feed read at a time for an endpoint.
const QUEUE_PAGE: i64 = 500;

/// The wait after the `attempts`-th failed attempt.
pub fn backoff_millis(attempts: i32) -> i64 {
    let doublings = attempts.clamp(1, 20) as u32 - 1;
    (FIRST_RETRY_MILLIS << doublings).min(LONGEST_RETRY_MILLIS)
}

/// Queues the changes recorded since each endpoint's position; how many
/// (`None`: no tenant has an endpoint, there is nothing to deliver).
pub fn queue(conn: &mut DbConn, now: Timestamp) -> ServiceResult<Option<usize>> {
    let endpoints = events::all_endpoints(conn)?;
    if endpoints.is_empty() {
        return Ok(None);
    }
    let mut queued = 0;
    for endpoint in endpoints {
        queued += queue_for(conn, &endpoint, now)?;
    }
    Ok(Some(queued))
}

/// What is kept past 7 days goes: the erased identities of erasures no
/// endpoint has taken and of deliveries not made, and the deliveries made.
pub fn purge(conn: &mut DbConn, now: Timestamp) -> ServiceResult<usize> {
    let before = now.millis() - KEEP_ERASED_MILLIS;
    Ok(events::forget_erased_sealed(conn, None, before)?
        + events::drop_identities_before(conn, before)?
        + events::delete_delivered_before(conn, before)?)
}

fn queue_for(conn: &mut DbConn, endpoint: &EndpointRow, now: Timestamp) -> ServiceResult<usize> {
    let tenant = &endpoint.tenant_id;
    if log_head(conn, tenant)?.size as i64 <= endpoint.next_seq {
        return Ok(0);
    }
    let types = types_of(endpoint);
    conn.immediate_transaction(|conn| {
        let from = Cursor(endpoint.next_seq as u64);
        let page = changes::read(conn, tenant, from, QUEUE_PAGE)?;
        let seqs: Vec<i64> = page.changes.iter().map(|c| c.seq as i64).collect();
        let sealed: HashMap<i64, Option<String>> = events::erased_sealed(conn, tenant, &seqs)?
            .into_iter()
            .collect();
        let mut queued = 0;
        for (change, group) in page.changes.iter().zip(&page.groups) {
            if types.as_ref().is_some_and(|t| !t.contains(&change.kind)) {
                continue;
            }
            let seq = change.seq as i64;
            let id = format!("evt_{}_{seq}", endpoint.id.trim_start_matches("ep_"));
            let new = NewDelivery {
                id: &id,
                endpoint_id: &endpoint.id,
                seq,
                group_id: group.0,
                identities_sealed: sealed.get(&seq).and_then(|s| s.as_deref()),
            };
            events::insert_delivery(conn, tenant, &new, now.millis())?;
            queued += 1;
        }
        // Another instance that moved the position first queued the same
        // deliveries (their ids are the same): nothing is doubled.
        events::advance(conn, endpoint, page.next.0 as i64)?;
        if let Some(lowest) = events::lowest_position(conn, tenant)? {
            events::forget_erased_sealed(conn, Some((tenant, lowest)), i64::MIN)?;
        }
        Ok(queued)
    })
}

/// One delivery this instance holds, ready to send.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery: DeliveryRow,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Leases up to `limit` due deliveries and prepares each: its change read
/// now (with an erasure's identities while they are kept), signed now.
pub fn take_due(
    conn: &mut DbConn,
    master: &MasterKey,
    now: Timestamp,
    limit: i64,
) -> ServiceResult<Vec<Attempt>> {
    let mut taken = Vec::new();
    for delivery in events::due(conn, now.millis(), limit)? {
        if !events::claim(conn, &delivery, now.millis(), now.millis() + LEASE_MILLIS)? {
            continue;
        }
        let endpoint = events::endpoint(conn, &delivery.tenant_id, &delivery.endpoint_id)?;
        let Some((endpoint, key)) = endpoint.and_then(|e| signing_key(master, &e).map(|k| (e, k)))
        else {
            tracing::error!(delivery = %delivery.id, "an event endpoint's secret cannot be opened");
            continue;
        };
        let body = body_of(conn, master, &delivery)?;
        let timestamp = now.millis() / 1000;
        let signature = standard_webhooks::sign(&key, &delivery.id, timestamp, &body);
        let headers = vec![
            ("webhook-id", delivery.id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        taken.push(Attempt {
            delivery,
            url: endpoint.url,
            headers,
            body,
        });
    }
    Ok(taken)
}

/// The change as the feed tells it now, and for an erasure the identities
/// it erased (while they are kept).
fn body_of(conn: &mut DbConn, master: &MasterKey, d: &DeliveryRow) -> ServiceResult<Vec<u8>> {
    let page = changes::read(conn, &d.tenant_id, Cursor(d.seq as u64), 1)?;
    let mut body = match page.changes.first() {
        Some(change) => serde_json::to_value(change).expect("a change serialises"),
        None => serde_json::json!({"seq": d.seq}),
    };
    let erased = d
        .identities_sealed
        .as_deref()
        .and_then(|sealed| open_erased(master, &d.tenant_id, d.seq, sealed))
        .and_then(|stored| Identity::from_stored(&stored));
    if let Some(identity) = erased {
        body["erased_identities"] = serde_json::json!([FeedIdentity::from(&identity)]);
    }
    Ok(serde_json::to_vec(&body).expect("JSON serialises"))
}

/// Records what an attempt came to; the outcome's name for the metrics
/// (`delivered`, `retry`, `failed`, `refused_address`).
pub fn finish(
    conn: &mut DbConn,
    attempt: &Attempt,
    sent: &Sent,
    now: Timestamp,
) -> ServiceResult<&'static str> {
    let d = &attempt.delivery;
    let at = now.millis();
    let (http_status, error) = match sent {
        Sent::Answered(status) => (Some(i32::from(*status)), None),
        Sent::Refused(why) => (None, Some(format!("refused address: {why}"))),
        Sent::Failed(why) => (None, Some(why.clone())),
    };
    let delivered = matches!(sent, Sent::Answered(200..=299));
    let gave_up = !delivered && at >= d.created_at + RETRY_FOR_MILLIS;
    let (status, name) = match (delivered, gave_up, sent) {
        (true, _, _) => (events::DELIVERED, "delivered"),
        (false, true, _) => (events::FAILED, "failed"),
        (false, false, Sent::Refused(_)) => (events::PENDING, "refused_address"),
        (false, false, _) => (events::PENDING, "retry"),
    };
    let outcome = Outcome {
        at,
        status,
        http_status,
        error: error.as_deref(),
        next_attempt_at: at + backoff_millis(d.attempts + 1),
    };
    events::finish_attempt(conn, d, &outcome)?;
    Ok(name)
}

/// A delivery as an admin sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub seq: i64,
    pub status: String,
    pub attempts: i32,
    pub created_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    /// Pending only: when it is tried next.
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

fn delivery_of(row: DeliveryRow) -> Delivery {
    let pending = row.status == events::PENDING;
    Delivery {
        next_attempt_at: pending.then(|| Timestamp::from_millis(row.next_attempt_at)),
        id: row.id,
        endpoint_id: row.endpoint_id,
        seq: row.seq,
        status: row.status,
        attempts: row.attempts,
        created_at: Timestamp::from_millis(row.created_at),
        last_attempt_at: row.last_attempt_at.map(Timestamp::from_millis),
        last_status: row.last_status,
        last_error: row.last_error,
    }
}

/// A tenant's deliveries of one status (or all), newest change first.
pub fn list(
    conn: &mut DbConn,
    tenant: &TenantId,
    status: Option<&str>,
    limit: i64,
) -> ServiceResult<Vec<Delivery>> {
    Ok(events::list(conn, tenant, status, limit)?
        .into_iter()
        .map(delivery_of)
        .collect())
}

/// A failed delivery sent again at once and retried for another 24 hours
/// (404 unknown, 409 `delivery_not_failed`).
pub fn retry(
    conn: &mut DbConn,
    tenant: &TenantId,
    id: &str,
    now: Timestamp,
) -> ServiceResult<Delivery> {
    conn.immediate_transaction(|conn| {
        if !events::retry(conn, tenant, id, now.millis())? {
            return Err(match events::delivery(conn, tenant, id)? {
                None => Rejection::NotFound("no such event delivery"),
                Some(_) => Rejection::DeliveryNotFailed,
            }
            .into());
        }
        let row = events::delivery(conn, tenant, id)?;
        Ok(delivery_of(row.expect("the delivery just retried")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(backoff_millis(1), 5_000);
        assert_eq!(backoff_millis(2), 10_000);
        assert_eq!(backoff_millis(5), 80_000);
        assert_eq!(backoff_millis(11), 3_600_000);
        assert_eq!(backoff_millis(40), 3_600_000);
        // Attempts within 24 hours: a few dozen, not thousands.
        let mut waited = 0;
        let mut attempts = 0;
        while waited < RETRY_FOR_MILLIS {
            attempts += 1;
            waited += backoff_millis(attempts);
        }
        assert!((20..40).contains(&attempts), "{attempts}");
    }
}
