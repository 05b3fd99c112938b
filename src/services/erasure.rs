//! Erasure (docs/privacy.md), on request and for retention: in one
//! transaction under the log's lock, for every group that holds the
//! identity (open or closed: a number's earlier groups name it too), the
//! opt-out of everything (unless already), one `erasure` entry per subject,
//! the suppression records, then the deletion of everything that names or
//! opens those subjects (`store/erasure.rs`). What belongs to another group
//! (a number's new holder) is left.

use super::error::{ServiceError, ServiceResult};
use super::events::seal_erased;
use crate::domain::access::TenantId;
use crate::domain::decision::opted_out_of_everything;
use crate::domain::evidence::Evidence;
use crate::domain::identity::Identity;
use crate::domain::ids::SubjectId;
use crate::domain::purpose::{CaptureChannel, MessageChannelSet, PurposeSet};
use crate::domain::record::{OptOutRecord, Record};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::store::append::{self, Answer, Appended, ErasureReason};
use crate::store::audit::{self, AuditEvent, AuditKind};
use crate::store::changes::keep_erased_hash;
use crate::store::connection::lock_log;
use crate::store::consent::{forget_windows, group_events};
use crate::store::erasure::{compact, forget_identity, forget_subject, members_of_every_group};
use crate::store::events::has_endpoints;
use crate::store::idempotency;
use crate::store::subjects::{current_subject, newest_subject_by_hash, Member};
use crate::store::suppression::suppress;
use crate::store::{DbConn, Rejection, StoreError};

/// What erasing needs to know of the request.
pub struct ErasureRequest<'a> {
    pub tenant: &'a TenantId,
    /// The erasing key's id (the opt-out's and the entry's collector).
    pub collector: &'a str,
    /// The identity whose groups to erase.
    pub identity: &'a Identity,
    /// Why, as the admin wrote it: kept in the audit trail only.
    pub reason: Option<&'a str>,
}

/// What an identity that never had a subject answers.
const NO_SUBJECT: &str = "this number or user id has no subject in this tenant";

/// What an erasure did.
#[derive(Debug, Clone)]
pub enum Erased {
    /// The last `erasure` entry appended.
    Recorded(Appended),
    /// Every group of the identity was already erased: nothing recorded.
    Already,
}

/// The answer to an erasure that found nothing left to erase (docs/privacy.md), stored for its idempotency key too.
pub const ALREADY_ERASED_BODY: &str = r#"{"erased":true,"recorded":false}"#;

/// Erases every group of an identity. `Rejected(NotFound)` when the
/// identity never had a subject.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %request.tenant))]
pub fn erase(
    conn: &mut DbConn,
    master: &MasterKey,
    request: &ErasureRequest<'_>,
    answer: Option<Answer<'_>>,
    now: Timestamp,
) -> ServiceResult<Erased> {
    let erased = conn.immediate_transaction(|conn| -> ServiceResult<Erased> {
        let members = members_to_erase(conn, master, request)?;
        if members.is_empty() {
            if let Some(answer) = answer {
                finish_answer(conn, answer.scope, 200, ALREADY_ERASED_BODY, now)?;
            }
            return Ok(Erased::Already);
        }
        let erased = erase_on_request(conn, master, request, &members, now)?;
        if let Some(answer) = answer {
            let body = (answer.render)(&erased);
            finish_answer(conn, answer.scope, 201, &body, now)?;
        }
        tracing::info!(seq = erased.seq, subject = %erased.subject, "erased");
        Ok(Erased::Recorded(erased))
    })?;
    if matches!(erased, Erased::Recorded(_)) {
        compact(conn);
    }
    Ok(erased)
}

/// Under the log's lock: the members of every group of the identity
/// (none when they are erased already); `Rejected(NotFound)` when it
/// never had a subject.
fn members_to_erase(
    conn: &mut DbConn,
    master: &MasterKey,
    request: &ErasureRequest<'_>,
) -> ServiceResult<Vec<Member>> {
    let (tenant, identity) = (request.tenant, request.identity.as_str());
    lock_log(conn, tenant)?;
    let hash = master.identity_hash(tenant, identity);
    if newest_subject_by_hash(conn, tenant, &hash)?.is_none() {
        return Err(Rejection::NotFound(NO_SUBJECT).into());
    }
    Ok(members_of_every_group(conn, tenant, identity)?)
}

/// The opt-out first, then one `erasure` entry a member and the audit
/// event; returns the last `erasure` entry.
fn erase_on_request(
    conn: &mut DbConn,
    master: &MasterKey,
    request: &ErasureRequest<'_>,
    members: &[Member],
    now: Timestamp,
) -> ServiceResult<Appended> {
    let ErasureRequest {
        tenant,
        collector,
        identity,
        reason,
    } = *request;
    opt_out_before_erasure(conn, master, request, now)?;
    let asked = Some(identity.as_str());
    let erased = erase_members(
        conn,
        master,
        tenant,
        collector,
        (members, asked),
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
    Ok(erased)
}

fn finish_answer(
    conn: &mut DbConn,
    scope: &idempotency::IdempotencyScope,
    status: u16,
    body: &str,
    now: Timestamp,
) -> ServiceResult<()> {
    if !idempotency::finish(conn, scope, status, body, None, now.millis())? {
        return Err(Rejection::IdempotencyLost.into());
    }
    Ok(())
}

/// The opt-out of everything an erasure records first, on the identity's
/// open subject, unless its group is opted out of everything already (a
/// closed group is: its closing opt-out covers everything).
fn opt_out_before_erasure(
    conn: &mut DbConn,
    master: &MasterKey,
    request: &ErasureRequest<'_>,
    now: Timestamp,
) -> ServiceResult<()> {
    let tenant = request.tenant;
    let Some(open) = current_subject(conn, tenant, request.identity.as_str())? else {
        return Ok(());
    };
    if opted_out_of_everything(&group_events(conn, open.group_id)?) {
        return Ok(());
    }
    let at = append::next_recorded_at(conn, tenant, now)?;
    let opt_out = Record::OptOut(OptOutRecord {
        identity: request.identity.clone(),
        channel: CaptureChannel::Api,
        purposes: PurposeSet::all(),
        message_channels: MessageChannelSet::all(),
        captured_at: at,
        backfill: false,
        evidence: Evidence::from_pairs([("reason", "erasure")]),
        lift_class: None,
    });
    match append::append_locked(conn, master, tenant, request.collector, &opt_out, None, now) {
        // Erased before, and since then only a window (an interaction, a
        // message that recorded nothing): the suppression keeps it opted
        // out; the new subject is erased all the same.
        Err(StoreError::Rejected(Rejection::SuppressedNothingToRecord)) | Ok(_) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Erases subjects (whole groups), inside the caller's transaction under
/// the log's lock: one `erasure` entry each with the feed hash of the
/// identity it erased (docs/changes.md), then (on request) a suppression
/// record for the identity `asked` and for each identity whose newest
/// subject is among them (never for one that has since started a
/// newer group: that is someone else now), then the deletion of what names
/// or opens them. Returns the last `erasure` entry.
pub fn erase_members(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    collector: &str,
    (members, asked): (&[Member], Option<&str>),
    reason: ErasureReason,
    now: Timestamp,
) -> ServiceResult<Appended> {
    let ended = identities_ending_here(conn, master, tenant, members, asked)?;
    let delivered = has_endpoints(conn, tenant)?;
    let mut last = None;
    for member in members {
        let subject = (member.id, member.commitment.as_str());
        let appended =
            append::append_erasure_locked(conn, tenant, collector, subject, reason, now)?;
        if let Some(identity) = &member.identity {
            keep_for_the_feed(conn, master, tenant, (&appended, identity), delivered)?;
        }
        last = Some(appended);
    }
    let erased = last.ok_or(ServiceError::from(Rejection::NotFound(NO_SUBJECT)))?;
    let at = erased.recorded_at.millis();
    for identity in &ended {
        if reason == ErasureReason::Request {
            suppress(conn, tenant, &master.identity_hash(tenant, identity), at)?;
        }
        forget_identity(conn, master, tenant, identity)?;
    }
    let ids: Vec<SubjectId> = members.iter().map(|m| m.id).collect();
    forget_windows(conn, &ids)?;
    for member in members {
        forget_subject(conn, tenant, member.id, at)?;
    }
    Ok(erased)
}

/// What the change feed and the event endpoints will say of an `erasure`
/// entry: the feed hash of the identity it erased, and (for a tenant with
/// endpoints, whose deliveries carry it) the identity sealed.
fn keep_for_the_feed(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (erasure, identity): (&Appended, &str),
    delivered: bool,
) -> ServiceResult<()> {
    let seq = erasure.seq as i64;
    let hash = master.feed_hash(tenant, identity);
    let sealed = delivered.then(|| seal_erased(master, tenant, seq, identity));
    let at = erasure.recorded_at.millis();
    Ok(keep_erased_hash(
        conn,
        tenant,
        seq,
        (&hash, sealed.as_deref()),
        at,
    )?)
}

/// The identities whose newest subject is among `members` (their story
/// ends with this erasure), and `asked` in any case.
fn identities_ending_here(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    members: &[Member],
    asked: Option<&str>,
) -> diesel::QueryResult<Vec<String>> {
    let mut ended: Vec<String> = asked.map(str::to_owned).into_iter().collect();
    for member in members {
        let Some(identity) = &member.identity else {
            continue;
        };
        let hash = master.identity_hash(tenant, identity);
        let newest = newest_subject_by_hash(conn, tenant, &hash)?;
        if newest.is_some_and(|n| members.iter().any(|m| m.id == n.id)) {
            ended.push(identity.clone());
        }
    }
    ended.sort_unstable();
    ended.dedup();
    Ok(ended)
}
