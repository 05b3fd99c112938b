//! Evidence retention and the purges (SPEC section 11): the subjects whose
//! evidence is due, their erasure with reason `retention` (no opt-out, no
//! suppression), and the windows that closed more than a day ago.

use super::append::{Appended, ErasureReason};
use super::audit::{self, AuditEvent, AuditKind};
use super::connection::lock_log;
use super::consent::group_events;
use super::erasure::erase_members;
use super::links::last_link_at;
use super::schema::{consent_events, subjects, tenants, windows};
use super::subjects::{delete_if_empty, group_holds_entries, group_members};
use super::{DbConn, StoreResult};
use crate::domain::decision::WINDOW_MILLIS;
use crate::domain::retention::group_retention_due;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use diesel::prelude::*;

/// The collector of the `erasure` entries retention appends.
pub const RETENTION_COLLECTOR: &str = "system:retention";

const DAY_MILLIS: i64 = 24 * 3600 * 1000;

/// The tenants whose `evidence_retention_days` is set.
pub fn tenants_with_retention(conn: &mut DbConn) -> QueryResult<Vec<String>> {
    tenants::table
        .filter(tenants::evidence_retention_days.is_not_null())
        .order(tenants::id)
        .select(tenants::id)
        .load(conn)
}

/// Up to `limit` current subjects of a tenant with an id above `after`
/// that may be due: none of their opt-ins or opt-outs was captured after
/// the tenant's retention period began (the start of retention is never
/// before a subject's last event, so the others cannot be). Oldest first.
pub fn candidates(
    conn: &mut DbConn,
    tenant: &str,
    after: i64,
    limit: i64,
    now: Timestamp,
) -> QueryResult<Vec<i64>> {
    let days: Option<i64> = tenants::table
        .find(tenant)
        .select(tenants::evidence_retention_days)
        .first(conn)?;
    let Some(days) = days else {
        return Ok(Vec::new());
    };
    let newest_allowed = now.millis().saturating_sub(days.saturating_mul(DAY_MILLIS));
    let later_event = consent_events::table
        .filter(consent_events::group_id.eq(subjects::group_id))
        .filter(consent_events::captured_at.gt(newest_allowed));
    subjects::table
        .filter(subjects::tenant_id.eq(tenant))
        .filter(subjects::erased_at.is_null())
        .filter(subjects::id.gt(after))
        .filter(diesel::dsl::not(diesel::dsl::exists(later_event)))
        .order(subjects::id)
        .limit(limit)
        .select(subjects::id)
        .load(conn)
}

/// Erases a subject's group for retention if it is due now, deciding under
/// the log's lock (an opt-in recorded since it was listed keeps it): an
/// `erasure` entry of reason `retention` per subject, then the deletion of
/// their identities, salts, evidence, windows, dead letters and
/// idempotency records.
/// `None` when it is not due (or no longer current).
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant))]
pub fn erase_if_due(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    subject_id: i64,
    now: Timestamp,
) -> StoreResult<Option<Appended>> {
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        let (retention, max_age): (Option<i64>, Option<i64>) = tenants::table
            .find(tenant)
            .select((
                tenants::evidence_retention_days,
                tenants::max_consent_age_days,
            ))
            .first(conn)?;
        let Some(retention) = retention else {
            return Ok(None);
        };
        let group: Option<i64> = subjects::table
            .find(subject_id)
            .filter(subjects::tenant_id.eq(tenant))
            .filter(subjects::erased_at.is_null())
            .select(subjects::group_id)
            .first(conn)
            .optional()?;
        let Some(group) = group else {
            return Ok(None);
        };
        if !group_holds_entries(conn, group)? {
            // An arrival that recorded nothing: no entry to erase; it goes
            // with its windows (`purge_closed_windows`).
            return Ok(None);
        }
        let events = group_events(conn, group)?;
        let members = group_members(conn, group)?;
        let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
        let last_link = last_link_at(conn, &ids)?;
        if !group_retention_due(&events, last_link, max_age, retention, now) {
            return Ok(None);
        }
        let erased = erase_members(
            conn,
            master,
            tenant,
            RETENTION_COLLECTOR,
            (&members, None),
            ErasureReason::Retention,
            now,
        )?;
        let event = AuditEvent {
            actor: RETENTION_COLLECTOR,
            kind: AuditKind::SubjectErased,
            details: serde_json::json!({
                "seq": erased.seq,
                "subject": erased.subject,
                "reason": "retention",
            }),
        };
        audit::record_within(conn, tenant, &event, now)?;
        tracing::info!(seq = erased.seq, subject = %erased.subject, "erased for retention");
        Ok(Some(erased))
    })
}

/// Deletes up to `limit` windows that closed (their last inbound message
/// is more than 24 hours old), the oldest first: a closed window changes no
/// decision. A window reopened meanwhile is kept. A subject left holding
/// nothing (an arrival that recorded nothing) goes with its last window.
/// Returns how many windows were deleted.
pub fn purge_closed_windows(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<usize> {
    let cutoff = now - WINDOW_MILLIS;
    conn.immediate_transaction(|conn| {
        let closed: Vec<(i64, String)> = windows::table
            .filter(windows::last_inbound_at.le(cutoff))
            .order(windows::last_inbound_at)
            .limit(limit)
            .select((windows::subject_id, windows::phone_number_id))
            .load(conn)?;
        let mut purged = 0;
        for (subject, id) in &closed {
            purged += diesel::delete(
                windows::table
                    .filter(windows::subject_id.eq(subject))
                    .filter(windows::phone_number_id.eq(id))
                    .filter(windows::last_inbound_at.le(cutoff)),
            )
            .execute(conn)?;
        }
        let mut subjects: Vec<i64> = closed.iter().map(|(subject, _)| *subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        for subject in subjects {
            delete_if_empty(conn, subject)?;
        }
        Ok(purged)
    })
}
