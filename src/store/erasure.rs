//! Erasure on request (SPEC section 11): in one transaction under the log's
//! lock, the opt-out of everything (unless already), the `erasure` entry,
//! the suppression record (the tenant's keyed hash of the identity), then
//! the deletion of everything that names or opens the identity. The entries
//! and their commitments stay, so every proof and checkpoint stays valid.

use super::append::{self, Answer, Appended, ErasureReason};
use super::audit::{self, AuditEvent, AuditKind};
use super::connection::lock_log;
use super::consent::group_events;
use super::dead_letters;
use super::idempotency;
use super::schema::{entries, idempotency_keys, subject_aliases, subjects, windows};
use super::subjects::{group_members, newest_subject, Member};
use super::suppression::suppress;
use super::{DbConn, Rejection, StoreError, StoreResult};
use crate::domain::decision::opted_out_of_everything;
use crate::domain::evidence::Evidence;
use crate::domain::identity::Identity;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::record::{OptOutRecord, Record};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use diesel::prelude::*;

/// What erasing needs to know of the request.
pub struct ErasureRequest<'a> {
    pub tenant: &'a str,
    /// The erasing key's id (the opt-out's and the entry's collector).
    pub collector: &'a str,
    /// Any identity of the group to erase.
    pub identity: &'a Identity,
    /// Why, as the admin wrote it: kept in the audit trail only.
    pub reason: Option<&'a str>,
}

/// Erases the newest group of an identity; the last `erasure` entry
/// appended. `Rejected(NotFound)` when the identity has no subject.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %request.tenant))]
pub fn erase(
    conn: &mut DbConn,
    master: &MasterKey,
    request: &ErasureRequest<'_>,
    answer: Option<Answer<'_>>,
    now: Timestamp,
) -> StoreResult<Appended> {
    let erased =
        conn.immediate_transaction(|conn| erase_locked(conn, master, request, answer, now))?;
    compact(conn);
    Ok(erased)
}

fn erase_locked(
    conn: &mut DbConn,
    master: &MasterKey,
    request: &ErasureRequest<'_>,
    answer: Option<Answer<'_>>,
    now: Timestamp,
) -> StoreResult<Appended> {
    let ErasureRequest {
        tenant,
        collector,
        identity,
        reason,
    } = *request;
    lock_log(conn, tenant)?;
    let Some(subject) = newest_subject(conn, tenant, identity.as_str())? else {
        return Err(StoreError::Rejected(Rejection::NotFound));
    };
    let events = group_events(conn, subject.group_id)?;
    if !opted_out_of_everything(&events) && subject.closed_at.is_none() {
        let at = append::next_recorded_at(conn, tenant, now)?;
        let opt_out = Record::OptOut(OptOutRecord {
            identity: identity.clone(),
            channel: CaptureChannel::Api,
            purposes: PurposeSet::all(),
            message_channels: MessageChannelSet::all(),
            captured_at: at,
            backfill: false,
            evidence: Evidence::from_pairs([("reason", "erasure")]),
            lift_class: None,
        });
        append::append_locked(conn, master, tenant, collector, &opt_out, None, now)?;
    }
    let members = group_members(conn, subject.group_id)?;
    let erased = erase_members(
        conn,
        master,
        tenant,
        collector,
        &members,
        ErasureReason::Request,
        now,
    )?;
    let event = AuditEvent {
        actor: collector,
        kind: AuditKind::SubjectErased,
        details: serde_json::json!({
            "seq": erased.seq,
            "subject": erased.subject,
            "subjects": members.len(),
            "reason": "request",
            "note": reason,
        }),
    };
    audit::record_within(conn, tenant, &event, now)?;
    if let Some(answer) = answer {
        let body = (answer.render)(&erased);
        if !idempotency::finish(conn, answer.scope, 201, &body, None, now.millis())? {
            return Err(StoreError::Rejected(Rejection::IdempotencyLost));
        }
    }
    tracing::info!(seq = erased.seq, subject = %erased.subject, "erased");
    Ok(erased)
}

/// Erases every subject of a group, inside the caller's transaction under
/// the log's lock: one `erasure` entry each, then (on request) a
/// suppression record per identity, then the deletion of what names or
/// opens them. Returns the last `erasure` entry.
pub(super) fn erase_members(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    collector: &str,
    members: &[Member],
    reason: ErasureReason,
    now: Timestamp,
) -> StoreResult<Appended> {
    let mut last = None;
    for member in members {
        let subject = (member.id, member.commitment.as_str());
        last = Some(append::append_erasure_locked(
            conn, tenant, collector, subject, reason, now,
        )?);
    }
    let erased = last.ok_or(StoreError::Rejected(Rejection::NotFound))?;
    let at = erased.recorded_at.millis();
    for member in members {
        if let (Some(identity), ErasureReason::Request) = (&member.identity, reason) {
            suppress(conn, tenant, &master.identity_hash(tenant, identity), at)?;
        }
        forget_subject(
            conn,
            master,
            tenant,
            member.id,
            member.identity.as_deref(),
            at,
        )?;
    }
    Ok(erased)
}

/// Deletes what names or opens the subject: its identity and salt, every
/// evidence body and salt of its entries, its documents, windows, dead
/// letters and idempotency records. Consent texts are the tenant's, not the person's,
/// and stay.
pub(super) fn forget_subject(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &str,
    subject_id: i64,
    identity: Option<&str>,
    at: i64,
) -> StoreResult<()> {
    diesel::update(subjects::table.find(subject_id))
        .set((
            subjects::identity.eq(None::<String>),
            subjects::salt.eq(None::<String>),
            subjects::erased_at.eq(Some(at)),
        ))
        .execute(conn)?;
    diesel::update(entries::table.filter(entries::subject_id.eq(subject_id)))
        .set((
            entries::evidence_salt.eq(None::<String>),
            entries::evidence_jcs.eq(None::<String>),
        ))
        .execute(conn)?;
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::tenant_id.eq(tenant))
            .filter(idempotency_keys::subject_id.eq(subject_id)),
    )
    .execute(conn)?;
    super::documents::delete_of_subject(conn, tenant, subject_id)?;
    let Some(identity) = identity else {
        return Ok(());
    };
    diesel::delete(
        windows::table
            .filter(windows::tenant_id.eq(tenant))
            .filter(windows::identity.eq(identity)),
    )
    .execute(conn)?;
    diesel::delete(
        subject_aliases::table
            .filter(subject_aliases::tenant_id.eq(tenant))
            .filter(
                subject_aliases::e164
                    .eq(identity)
                    .or(subject_aliases::user_id.eq(identity)),
            ),
    )
    .execute(conn)?;
    dead_letters::delete_letters_naming(conn, master, tenant, identity)?;
    Ok(())
}

/// After an erasure commits: SQLite truncates its WAL (the deleted rows'
/// old pages are in it; `secure_delete` already zeroed them in the main
/// file), PostgreSQL vacuums the tables it touched. A failure is logged and
/// the next erasure tries again; the erasure itself stands. Retention calls
/// it once after a run's erasures.
pub fn compact(conn: &mut DbConn) {
    let done = match conn {
        DbConn::Sqlite(c) => diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(c),
        DbConn::Pg(c) => diesel::sql_query(
            "VACUUM subjects, entries, windows, subject_aliases, idempotency_keys, dead_letters, documents, document_subjects",
        )
        .execute(c),
    };
    if let Err(error) = done {
        tracing::warn!(%error, "compacting after an erasure failed");
    }
}
