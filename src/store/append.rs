//! The appender: each opt-in or opt-out is one transaction that holds the
//! log's head (`BEGIN IMMEDIATE` on SQLite), writes the entry, the consent
//! state a check reads and the idempotent answer, then moves the head.

use super::idempotency::{self, IdempotencyScope};
use super::log;
use super::schema::{brands, consent_events, consent_texts, entries, tenants};
use super::subjects::{current_or_new_subject, current_subject, group_holds_entries};
use super::{DbConn, Rejection, StoreError, StoreResult};
use crate::domain::access::TenantId;
use crate::domain::ids::{GroupId, SubjectId};
use crate::domain::purpose::{MessageChannelSet, PurposeSet};
pub use crate::domain::record::{
    LiftClass, LiftRecord, OptInRecord, OptOutRecord, PendingConfirmation, Record,
};
use crate::domain::time::Timestamp;
use crate::keys::{random_salt_hex, MasterKey};
use crate::ledger::commitment::evidence_commitment;
use crate::ledger::entry::{Entry, EntryType};
use crate::ledger::hash::{leaf_hash, sha256_hex};
use crate::ledger::jcs::jcs_string_map;
use crate::ledger::merkle::Hash;
use diesel::prelude::*;

/// What an append produced.
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: u64,
    /// Written as hex only where it is answered.
    pub leaf_hash: Hash,
    pub subject: String,
    pub subject_id: SubjectId,
    pub recorded_at: Timestamp,
}

/// The idempotent answer to store with the write: the scope and a function
/// that renders the 201 body from what was appended.
pub struct Answer<'a> {
    pub scope: &'a IdempotencyScope,
    pub render: &'a dyn Fn(&Appended) -> String,
}

/// An erased identity (docs/recording.md and docs/privacy.md): an opt-in captured at or
/// before its latest erasure is refused, and while it has no newer subject
/// (an open one that holds an entry: one an arrival made, holding only a
/// window, does not count) an opt-out or a lift records nothing.
fn check_suppression(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    record: &Record,
) -> StoreResult<()> {
    let identity = record.identity().as_str();
    let Some(erased_at) = super::suppression::suppression_of(conn, master, tenant, identity)?
    else {
        return Ok(());
    };
    match record {
        Record::OptIn(r) if r.captured_at <= erased_at => {
            Err(StoreError::Rejected(Rejection::Suppressed))
        }
        Record::OptIn(_) => Ok(()),
        Record::OptOut(_) | Record::Lift(_) | Record::Confirm(_) => {
            if has_newer_subject(conn, tenant, identity)? {
                Ok(())
            } else {
                Err(StoreError::Rejected(Rejection::SuppressedNothingToRecord))
            }
        }
    }
}

/// Whether an erased identity has a subject newer than its erasure: an
/// open one whose group holds an entry (a link counts; one an arrival
/// made, holding only a window, does not).
fn has_newer_subject(conn: &mut DbConn, tenant: &TenantId, identity: &str) -> QueryResult<bool> {
    match current_subject(conn, tenant, identity)? {
        Some(subject) => group_holds_entries(conn, subject.group_id),
        None => Ok(false),
    }
}

/// Whether an opt-out of `identity` would record nothing (docs/recording.md):
/// it is erased on request and has no newer subject, so it is opted out
/// already.
pub fn opt_out_records_nothing(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    identity: &str,
) -> QueryResult<bool> {
    if super::suppression::suppression_of(conn, master, tenant, identity)?.is_none() {
        return Ok(false);
    }
    Ok(!has_newer_subject(conn, tenant, identity)?)
}

/// Appends an `erasure` entry (no channel, time or evidence) for a subject,
/// inside a transaction the caller holds with the log's lock.
pub fn append_erasure_locked(
    conn: &mut DbConn,
    tenant: &TenantId,
    collector: &str,
    subject: (SubjectId, &str),
    reason: ErasureReason,
    now: Timestamp,
) -> StoreResult<Appended> {
    let head = lock_head(conn, tenant, None, now)?;
    let (subject_id, commitment) = subject;
    let mut entry = Entry::new(
        EntryType::Erasure,
        &head.origin,
        head.size,
        &head.hash,
        head.recorded_at,
        commitment,
        collector,
    );
    entry.reason = Some(reason.as_str().to_owned());
    let (leaf_hash, _) = write_entry(conn, tenant, None, subject_id, None, &entry)?;
    Ok(Appended {
        seq: head.size,
        leaf_hash,
        subject: commitment.to_owned(),
        subject_id,
        recorded_at: head.recorded_at,
    })
}

/// Why an identity was erased (the `erasure` entry's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureReason {
    Request,
    Retention,
}

impl ErasureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureReason::Request => "request",
            ErasureReason::Retention => "retention",
        }
    }
}

/// What an append's `recorded_at` will be: max(now, the head's), read under
/// the log's lock.
pub fn next_recorded_at(
    conn: &mut DbConn,
    tenant: &TenantId,
    now: Timestamp,
) -> QueryResult<Timestamp> {
    let head: Option<i64> = crate::the_row!(
        conn,
        tenants::table
            .find(tenant)
            .select(tenants::head_recorded_at)
    )?;
    Ok(later_of(now, head))
}

/// max(now, the previous entry's `recorded_at`).
fn later_of(now: Timestamp, head_recorded_at: Option<i64>) -> Timestamp {
    match head_recorded_at {
        Some(previous) if previous > now.millis() => Timestamp::from_millis(previous),
        _ => now,
    }
}

/// How far `captured_at` may be after `recorded_at` (clock skew).
const CAPTURE_SKEW_MILLIS: i64 = 60_000;

/// The log's head as an append finds it, under the log's lock.
pub struct Head {
    pub origin: String,
    pub size: u64,
    pub hash: String,
    /// max(server now, the previous entry's): it never decreases.
    pub recorded_at: Timestamp,
}

/// Takes the log's lock and reads its head; refuses what the lock decides
/// (a capture time past the clock skew, a brand retired meanwhile).
pub fn lock_head(
    conn: &mut DbConn,
    tenant: &TenantId,
    record: Option<&Record>,
    now: Timestamp,
) -> StoreResult<Head> {
    super::connection::lock_log(conn, tenant)?;
    let (origin, size, hash, head_recorded_at): (String, i64, String, Option<i64>) = crate::the_row!(
        conn,
        tenants::table.find(tenant).select((
            tenants::origin,
            tenants::tree_size,
            tenants::head_hash,
            tenants::head_recorded_at,
        ))
    )?;
    let recorded_at = later_of(now, head_recorded_at);
    if record.is_some_and(|r| r.captured_at() > recorded_at.plus_millis(CAPTURE_SKEW_MILLIS)) {
        return Err(StoreError::Rejected(Rejection::CapturedInFuture));
    }
    if let Some(Record::OptIn(r)) = record {
        let retired: Option<i64> = crate::the_row!(
            conn,
            brands::table.find(r.brand_id.0).select(brands::retired_at)
        )?;
        if retired.is_some() {
            return Err(StoreError::Rejected(Rejection::BrandRetired));
        }
    }
    Ok(Head {
        origin,
        size: size as u64,
        hash,
        recorded_at,
    })
}

/// The fields of the entry that depend on what is recorded (docs/ledger-format.md).
fn fill_entry(entry: &mut Entry, record: &Record, consent_text_sha256: Option<&str>) {
    match record {
        Record::OptIn(r) => {
            entry.channel = Some(r.channel.as_str().to_owned());
            entry.captured_at = Some(r.captured_at);
            entry.purposes = Some(names(r.purposes.names()));
            entry.message_channels = Some(names(r.message_channels.names()));
            entry.company_name_shown = Some(r.company_name_shown.clone());
            entry.consent_text_sha256 = consent_text_sha256.map(str::to_owned);
            entry.language = r.language.clone();
            entry.backfill = r.backfill.then_some(true);
            entry.confirmation_required = r.confirmation.is_some().then_some(true);
        }
        Record::OptOut(r) => {
            entry.channel = Some(r.channel.as_str().to_owned());
            entry.captured_at = Some(r.captured_at);
            entry.purposes = Some(names(r.purposes.names()));
            entry.message_channels = Some(names(r.message_channels.names()));
            entry.backfill = r.backfill.then_some(true);
        }
        Record::Lift(r) => {
            entry.channel = Some(r.channel.as_str().to_owned());
            entry.captured_at = Some(r.captured_at);
            entry.lifts = Some(r.lifts);
        }
        Record::Confirm(r) => {
            entry.channel = Some(r.channel.as_str().to_owned());
            entry.captured_at = Some(r.captured_at);
            entry.confirms = Some(r.confirms);
        }
    }
}

/// Stores an opt-in's consent text once per tenant; its SHA-256 (hex).
pub fn store_consent_text(
    conn: &mut DbConn,
    tenant: &TenantId,
    record: &Record,
) -> QueryResult<Option<String>> {
    let Record::OptIn(r) = record else {
        return Ok(None);
    };
    let text_hash = sha256_hex(r.consent_text.as_bytes());
    crate::on_backend!(conn, |c| diesel::insert_into(consent_texts::table)
        .values((
            consent_texts::tenant_id.eq(tenant),
            consent_texts::sha256.eq(&text_hash),
            consent_texts::body.eq(&r.consent_text),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(Some(text_hash))
}

/// An evidence body committed with its own salt.
pub struct SaltedEvidence {
    pub salt: String,
    pub jcs: String,
}

/// Writes the entry row, the consent state a check reads, the Merkle
/// leaf, and moves the head.
pub fn write_entry(
    conn: &mut DbConn,
    tenant: &TenantId,
    record: Option<(&Record, GroupId)>,
    subject_id: SubjectId,
    evidence: Option<&SaltedEvidence>,
    entry: &Entry,
) -> StoreResult<(Hash, String)> {
    let seq = entry.seq;
    let canonical = entry.canonical_json();
    let leaf = leaf_hash(canonical.as_bytes());
    let leaf_hex = hex::encode(leaf);
    crate::execute!(
        conn,
        diesel::insert_into(entries::table).values((
            entries::tenant_id.eq(tenant),
            entries::seq.eq(seq as i64),
            entries::leaf_hash.eq(&leaf_hex),
            entries::canonical_json.eq(&canonical),
            entries::subject_id.eq(subject_id),
            entries::evidence_salt.eq(evidence.map(|e| &e.salt)),
            entries::evidence_jcs.eq(evidence.map(|e| &e.jcs)),
            entries::consent_text_sha256.eq(&entry.consent_text_sha256),
        ))
    )?;
    crate::metrics::append_pending(entry.kind.as_str());
    if let Some((record, group_id)) = record {
        let at = (seq as i64, subject_id, group_id);
        insert_consent_event(conn, tenant, at, record)?;
    }
    log::store_leaf(conn, tenant, seq, leaf)?;
    let head = super::prepared::SetHead {
        tenant,
        size: seq as i64 + 1,
        hash: &leaf_hex,
        recorded_at: entry.recorded_at.millis(),
    };
    crate::execute!(conn, head)?;
    Ok((leaf, leaf_hex))
}

/// Appends one entry inside a transaction the caller (a service) holds
/// with the log's lock (`immediate_transaction`), so several entries and
/// other writes commit or roll back together. A refusal decided under the
/// lock (a brand retired meanwhile, a clock that stepped back, a lost
/// idempotency key) fails that transaction, which rolls everything back.
/// `now` is the server's clock.
#[tracing::instrument(level = "debug", skip_all, fields(tenant = %tenant, collector = %collector))]
pub fn append_locked(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    collector: &str,
    record: &Record,
    answer: Option<Answer<'_>>,
    now: Timestamp,
) -> StoreResult<Appended> {
    let head = lock_head(conn, tenant, Some(record), now)?;
    check_suppression(conn, master, tenant, record)?;
    let identity = record.identity().as_str();
    let found = current_or_new_subject(conn, master, tenant, identity, now.millis())?;
    let (subject_id, subject) = (found.id, found.commitment);
    super::documents::attach_named(conn, tenant, record, subject_id)?;
    let fields = record.evidence().fields();
    let evidence = SaltedEvidence {
        salt: random_salt_hex(),
        jcs: jcs_string_map(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    };
    let kind = match record {
        Record::OptIn(_) => EntryType::OptIn,
        Record::OptOut(_) => EntryType::OptOut,
        Record::Lift(_) => EntryType::OptOutLifted,
        Record::Confirm(_) => EntryType::Confirmation,
    };
    let (origin, seq) = (&head.origin, head.size);
    let mut entry = Entry::new(
        kind,
        origin,
        seq,
        &head.hash,
        head.recorded_at,
        &subject,
        collector,
    );
    entry.evidence_sha256 = Some(evidence_commitment(&evidence.salt, &evidence.jcs));
    let text_hash = store_consent_text(conn, tenant, record)?;
    fill_entry(&mut entry, record, text_hash.as_deref());
    let (leaf_hash, _) = write_entry(
        conn,
        tenant,
        Some((record, found.group_id)),
        subject_id,
        Some(&evidence),
        &entry,
    )?;
    let appended = Appended {
        seq,
        leaf_hash,
        subject,
        subject_id,
        recorded_at: head.recorded_at,
    };
    if let Some(answer) = answer {
        let body = (answer.render)(&appended);
        let still_ours = idempotency::finish(
            conn,
            answer.scope,
            201,
            &body,
            Some(subject_id),
            now.millis(),
        )?;
        if !still_ours {
            // A retry took the key over while this request stalled: it
            // records the entry, so this one must record nothing.
            return Err(StoreError::Rejected(Rejection::IdempotencyLost));
        }
    }
    tracing::debug!(seq, "appended");
    Ok(appended)
}

fn names(list: Vec<&'static str>) -> Vec<String> {
    list.into_iter().map(str::to_owned).collect()
}

/// Marks the consent event at `target` (this tenant's, of `kind`, that
/// `filter` holds for, not marked yet) with the entry that lifts or
/// confirms it: exactly one row, else the append rolls back (an entry
/// never lifts or confirms nothing).
macro_rules! mark_event {
    ($conn:expr, ($tenant:expr, $target:expr, $kind:literal), $filter:expr, $mark:ident = $by:expr) => {
        crate::execute!(
            $conn,
            diesel::update(
                consent_events::table
                    .filter(consent_events::tenant_id.eq($tenant))
                    .filter(consent_events::seq.eq($target as i64))
                    .filter($filter)
                    .filter(consent_events::kind.eq($kind))
                    .filter(consent_events::$mark.is_null()),
            )
            .set(consent_events::$mark.eq($by))
        )
        .and_then(|marked| match marked {
            1 => Ok(1),
            _ => Err(diesel::result::Error::NotFound),
        })
    };
}

/// Writes the consent state of an entry at (seq, subject, group): a new
/// opt-in or opt-out row, or a lift of an opt-out of the group.
fn insert_consent_event(
    conn: &mut DbConn,
    tenant: &TenantId,
    (seq, subject_id, group_id): (i64, SubjectId, GroupId),
    record: &Record,
) -> QueryResult<()> {
    let base = (
        consent_events::tenant_id.eq(tenant),
        consent_events::seq.eq(seq),
        consent_events::subject_id.eq(subject_id),
        consent_events::group_id.eq(group_id),
    );
    // What an opt-in's and an opt-out's rows have alike (one of the two is
    // written): the kind, the time, the channel and what it covers.
    let event = |kind: &'static str,
                 (purposes, message_channels): (PurposeSet, MessageChannelSet)| {
        (
            base,
            consent_events::kind.eq(kind),
            consent_events::captured_at.eq(record.captured_at().millis()),
            consent_events::channel.eq(record.channel().as_str()),
            consent_events::purposes.eq(purposes.bits()),
            consent_events::message_channels.eq(message_channels.bits()),
        )
    };
    match record {
        Record::OptIn(r) => {
            let confirmation = r.confirmation.as_ref();
            let row = (
                event("opt_in", (r.purposes, r.message_channels)),
                consent_events::brand_id.eq(Some(r.brand_id.0)),
                consent_events::company_name_shown.eq(Some(&r.company_name_shown)),
                consent_events::confirmation_required.eq(confirmation.is_some()),
                consent_events::confirmation_code_sha256
                    .eq(confirmation.map(|c| c.code_sha256.clone())),
                consent_events::confirmation_expires_at
                    .eq(confirmation.map(|c| c.expires_at.millis())),
            );
            crate::execute!(conn, diesel::insert_into(consent_events::table).values(row))?
        }
        Record::OptOut(r) => {
            let lift_class = r.lift_class.map(LiftClass::as_str);
            let row = (
                event("opt_out", (r.purposes, r.message_channels)),
                consent_events::lift_class.eq(lift_class),
            );
            crate::execute!(conn, diesel::insert_into(consent_events::table).values(row))?
        }
        Record::Lift(r) => mark_event!(
            conn,
            (tenant, r.lifts, "opt_out"),
            consent_events::group_id.eq(group_id),
            lifted_by = seq
        )?,
        // Only the opt-in's own subject confirms it (docs/pages.md).
        Record::Confirm(r) => mark_event!(
            conn,
            (tenant, r.confirms, "opt_in"),
            consent_events::subject_id
                .eq(subject_id)
                .and(consent_events::confirmation_required.eq(true)),
            confirmed_by = seq
        )?,
    };
    Ok(())
}
