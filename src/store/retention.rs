//! Evidence retention and the purges (docs/privacy.md): the subjects whose
//! evidence may be due (`services/retention.rs` decides and erases), and
//! the windows that closed more than a day ago.

use super::schema::{consent_events, subjects, tenants, windows};
use super::subjects::delete_if_empty;
use super::DbConn;
use crate::domain::access::TenantId;
use crate::domain::decision::WINDOW_MILLIS;
use crate::domain::ids::SubjectId;
use crate::domain::time::Timestamp;
use diesel::prelude::*;

/// The collector of the `erasure` entries retention appends.
pub const RETENTION_COLLECTOR: &str = "system:retention";

const DAY_MILLIS: i64 = 24 * 3600 * 1000;

/// The tenants whose `evidence_retention_days` is set.
pub fn tenants_with_retention(conn: &mut DbConn) -> QueryResult<Vec<TenantId>> {
    tenants::table
        .filter(tenants::evidence_retention_days.is_not_null())
        .order(tenants::id)
        .select(tenants::id)
        .load(conn)
}

/// A tenant's `evidence_retention_days` and `max_consent_age_days`.
pub fn retention_settings(
    conn: &mut DbConn,
    tenant: &TenantId,
) -> QueryResult<(Option<i64>, Option<i64>)> {
    tenants::table
        .find(tenant)
        .select((
            tenants::evidence_retention_days,
            tenants::max_consent_age_days,
        ))
        .first(conn)
}

/// Up to `limit` current subjects of a tenant with an id above `after`
/// that may be due: none of their opt-ins or opt-outs was captured after
/// the tenant's retention period began (the start of retention is never
/// before a subject's last event, so the others cannot be). Oldest first.
pub fn candidates(
    conn: &mut DbConn,
    tenant: &TenantId,
    after: SubjectId,
    limit: i64,
    now: Timestamp,
) -> QueryResult<Vec<SubjectId>> {
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

/// Deletes up to `limit` windows that closed (their last inbound message
/// is more than 24 hours old), the oldest first: a closed window changes no
/// decision. A window reopened meanwhile is kept. A subject left holding
/// nothing (an arrival that recorded nothing) goes with its last window.
/// Returns how many windows were deleted.
pub fn purge_closed_windows(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<usize> {
    let cutoff = now - WINDOW_MILLIS;
    conn.immediate_transaction(|conn| {
        let closed: Vec<(SubjectId, String)> = windows::table
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
        let mut subjects: Vec<SubjectId> = closed.iter().map(|(subject, _)| *subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        for subject in subjects {
            delete_if_empty(conn, subject)?;
        }
        Ok(purged)
    })
}
