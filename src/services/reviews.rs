//! Reviewing ambiguous messages (docs/messages.md): the items waiting, and
//! settling one, once. Under mode `opt_out` the message was recorded as an
//! opt-out: "not an opt-out" lifts it. Under mode `review` it recorded
//! nothing: "opt-out" records it then, with the message's own time.
//! Keeping an item: `inbound.rs`; its rows: `store/reviews.rs`.

use super::error::ServiceResult;
use super::recording::append_unless_suppressed;
use crate::domain::access::TenantId;
use crate::domain::evidence::Evidence;
use crate::domain::identity::Identity;
use crate::domain::policy::AmbiguousMode;
use crate::domain::problem::{ErrorCode, Invalid};
use crate::domain::purpose::{CaptureChannel, PurposeSet};
use crate::domain::record::{LiftRecord, Record};
use crate::domain::time::Timestamp;
use crate::keys::MasterKey;
use crate::providers::message::{keyword_opt_out, Provider};
use crate::store::append::Appended;
use crate::store::connection::lock_log;
use crate::store::consent::opt_out_is_effective;
use crate::store::reviews::{self, open_message, ReviewMessage, ReviewRow};
use crate::store::subjects::current_subject;
use crate::store::{DbConn, Rejection, StoreError};

/// The longest `note` a settlement takes, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// A review item as an admin reads it.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub id: String,
    pub mode: AmbiguousMode,
    /// The message's words; `None` when the sealed message does not open
    /// with this master key.
    pub message: Option<String>,
    /// The canonical number or user id it came from (same caveat).
    pub identity: Option<String>,
    pub received_at: Timestamp,
}

/// Up to `limit` items not yet settled, oldest first, after the item
/// `after` (the previous page's last id).
pub fn waiting(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    after: Option<&str>,
    limit: i64,
) -> ServiceResult<Vec<Waiting>> {
    let cursor = match after {
        Some(id) => {
            let found = reviews::find(conn, tenant, id)?;
            let row = found.ok_or(Rejection::NotFound("`after` names no review item"))?;
            Some((row.received_at, row.id))
        }
        None => None,
    };
    let rows = reviews::waiting(conn, tenant, cursor, limit)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let opened = open_message(master, tenant, &row.message_sealed);
            Waiting {
                mode: AmbiguousMode::parse(&row.mode).unwrap_or_default(),
                message: opened.as_ref().map(|m| m.text.clone()),
                identity: opened.map(|m| m.identity),
                received_at: Timestamp::from_millis(row.received_at),
                id: row.id,
            }
        })
        .collect())
}

/// What a reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    OptOut,
    NotAnOptOut,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::OptOut => "opt_out",
            Decision::NotAnOptOut => "not_an_opt_out",
        }
    }
}

/// A settlement: who decides, what, and why.
pub struct Settlement<'a> {
    pub decision: Decision,
    pub note: Option<&'a str>,
    /// The admin's key id: the collector of what the settlement records.
    pub key_id: &'a str,
}

/// What a settlement did.
#[derive(Debug)]
pub struct Settled {
    pub mode: AmbiguousMode,
    /// The entry it appended: the lift of the opt-out (mode `opt_out`,
    /// not an opt-out) or the opt-out (mode `review`, an opt-out); `None`
    /// when the decision records nothing, or there is nothing left to
    /// record (the opt-out was lifted meanwhile, the identity was erased).
    pub appended: Option<Appended>,
}

/// Settles a review item, once (again: 409 `review_settled`), in one
/// transaction under the log's lock.
pub fn settle(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    (id, settlement): (&str, Settlement<'_>),
    now: Timestamp,
) -> ServiceResult<Settled> {
    conn.immediate_transaction(|conn| {
        lock_log(conn, tenant)?;
        let row =
            reviews::find(conn, tenant, id)?.ok_or(Rejection::NotFound("no such review item"))?;
        if row.settled_at.is_some() {
            return Err(Invalid::new(
                ErrorCode::ReviewSettled,
                "this review item was settled already; a settlement is final",
            )
            .into());
        }
        let mode = AmbiguousMode::parse(&row.mode).unwrap_or_default();
        let message = open_message(master, tenant, &row.message_sealed).ok_or_else(|| {
            StoreError::Unreadable("a review item does not open with this master key".into())
        })?;
        let record = match (mode, settlement.decision) {
            (AmbiguousMode::OptOut, Decision::NotAnOptOut) => {
                lift_of(conn, tenant, &row, &message, &settlement, now)?
            }
            (AmbiguousMode::Review, Decision::OptOut) => {
                Some(opt_out_of(&row, &message, &settlement)?)
            }
            _ => None,
        };
        let appended = match record {
            Some(record) => {
                append_unless_suppressed(conn, master, tenant, settlement.key_id, &record, now)?
            }
            None => None,
        };
        let seq = appended.as_ref().map(|a| a.seq);
        reviews::settle(
            conn,
            tenant,
            id,
            (settlement.decision.as_str(), seq),
            now.millis(),
        )?;
        Ok(Settled { mode, appended })
    })
}

/// Mode `opt_out`, not an opt-out: the lift of the opt-out the message
/// recorded, while it is still in force in the identity's group.
fn lift_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    row: &ReviewRow,
    message: &ReviewMessage,
    settlement: &Settlement<'_>,
    now: Timestamp,
) -> ServiceResult<Option<Record>> {
    let Some(seq) = row.opt_out_seq else {
        return Ok(None);
    };
    let identity = identity_of(message)?;
    let Some(subject) = current_subject(conn, tenant, identity.as_str())? else {
        return Ok(None);
    };
    if !opt_out_is_effective(conn, tenant, seq, subject.group_id)? {
        return Ok(None);
    }
    let mut evidence = Evidence::from_pairs([("reason", "reviewed")]);
    if let Some(note) = settlement.note {
        evidence = evidence.with("note", note);
    }
    Ok(Some(Record::Lift(LiftRecord {
        identity,
        channel: CaptureChannel::Api,
        captured_at: now,
        evidence,
        lifts: seq as u64,
    })))
}

/// Mode `review`, an opt-out: the opt-out of the message, captured when it
/// was, the message as evidence.
fn opt_out_of(
    row: &ReviewRow,
    message: &ReviewMessage,
    settlement: &Settlement<'_>,
) -> ServiceResult<Record> {
    let provider = Provider::parse(&message.provider)
        .ok_or_else(|| StoreError::Unreadable("a review item names no provider".into()))?;
    let mut evidence = message
        .evidence
        .iter()
        .fold(Evidence::default(), |e, (k, v)| e.with(k, v));
    if let Some(note) = settlement.note {
        evidence = evidence.with("note", note);
    }
    Ok(keyword_opt_out(
        provider,
        identity_of(message)?,
        PurposeSet::from_bits(row.purposes),
        Timestamp::from_millis(row.captured_at),
        evidence,
    ))
}

fn identity_of(message: &ReviewMessage) -> ServiceResult<Identity> {
    Identity::from_stored(&message.identity).ok_or_else(|| {
        StoreError::Unreadable("a review item's identity does not parse".into()).into()
    })
}
