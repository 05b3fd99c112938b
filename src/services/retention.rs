//! Evidence retention (docs/privacy.md): a group whose evidence is due is
//! erased with reason `retention` (no opt-out, no suppression), deciding
//! again under the log's lock. The housekeeping job lists the candidates
//! (`store/retention.rs`) and calls this for each.

use super::erasure::erase_members;
use super::error::ServiceResult;
use crate::domain::access::TenantId;
use crate::domain::ids::SubjectId;
use crate::domain::retention::group_retention_due;
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::append::{Appended, ErasureReason};
use crate::store::audit::{self, AuditEvent, AuditKind};
use crate::store::connection::lock_log;
use crate::store::consent::group_events;
use crate::store::links::last_link_at;
use crate::store::retention::{retention_settings, RETENTION_COLLECTOR};
use crate::store::subjects::{group_holds_entries, group_members, live_group_of};
use crate::store::DbConn;

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
    tenant: &TenantId,
    subject_id: SubjectId,
    now: Timestamp,
) -> ServiceResult<Option<Appended>> {
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        let (retention, max_age) = retention_settings(conn, tenant)?;
        let Some(retention) = retention else {
            return Ok(None);
        };
        let Some(group) = live_group_of(conn, tenant, subject_id)? else {
            return Ok(None);
        };
        if !group_holds_entries(conn, group)? {
            // An arrival that recorded nothing: no entry to erase; it goes
            // with its windows (`purge_closed_windows`).
            return Ok(None);
        }
        let events = group_events(conn, group)?;
        let members = group_members(conn, group)?;
        let ids: Vec<SubjectId> = members.iter().map(|m| m.id).collect();
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
