//! One entry of a verified export re-appended at the log's head, exactly
//! as it was (the same canonical JSON, so the same leaf hash), with the
//! consent state a check reads rebuilt from its openings.

use super::error::RestoreError;
use crate::domain::access::TenantId;
use crate::domain::confirmation;
use crate::domain::evidence::Evidence;
use crate::domain::identity::Identity;
use crate::domain::ids::{BrandId, GroupId, SubjectId};
use crate::domain::purpose::{CaptureChannel, MessageChannel, Purpose};
use crate::domain::record::{
    ConfirmRecord, LiftClass, LiftRecord, OptInDraft, OptInRecord, OptOutRecord,
    PendingConfirmation, Record,
};
use crate::keys::MasterKey;
use crate::ledger::entry::{Entry, EntryType, Openings, SubjectOpening};
use crate::ledger::verify::evidence_jcs_of_map;
use crate::store::append::{lock_head, store_consent_text, write_entry, SaltedEvidence};
use crate::store::changes::keep_erased_hash;
use crate::store::consent::forget_windows;
use crate::store::erasure::{forget_identity, forget_subject};
use crate::store::links::{close_subjects, keep_link};
use crate::store::restore::{group_of, identity_of, mark_erased, subject_by_commitment};
use crate::store::subjects::{insert_subject, newest_subject_by_hash};
use crate::store::suppression::suppress;
use crate::store::tenants::{find_brand, insert_brand};
use crate::store::DbConn;

/// What one line of an export holds.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExportedEntry {
    pub entry: Entry,
    pub leaf_hash: String,
    pub openings: Option<Openings>,
}

/// A line that cannot be re-appended as it is.
fn refuse(seq: u64, why: impl std::fmt::Display) -> RestoreError {
    RestoreError::Refused(format!("seq {seq}: {why}"))
}

/// Re-appends one entry at the log's head, in one transaction. Its `seq`
/// and `prev` must be the head's; the leaf hash written must be the one
/// exported.
pub fn restore_entry(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    line: &ExportedEntry,
) -> Result<(), RestoreError> {
    conn.immediate_transaction(|conn| {
        let entry = &line.entry;
        let head = lock_head(conn, tenant, None, entry.recorded_at)?;
        if entry.seq != head.size || entry.prev != head.hash || entry.log != head.origin {
            return Err(refuse(
                entry.seq,
                format!(
                    "the log's head is at size {}: the export does not continue it",
                    head.size
                ),
            ));
        }
        let openings = line.openings.clone().unwrap_or(Openings {
            subject: None,
            evidence: None,
            consent_text: None,
            erased: false,
            linked: None,
        });
        if !openings.erased && openings.subject.is_none() {
            return Err(refuse(
                entry.seq,
                "the export has no openings (exported with openings=none?): the consent state cannot be rebuilt",
            ));
        }
        let at = entry.recorded_at.millis();
        let opening = openings.subject.as_ref();
        let subject_id = subject_of(conn, master, tenant, &entry.subject, opening, at)?;
        let record = match &openings.subject {
            Some(subject) => {
                let identity = subject
                    .identity()
                    .ok_or_else(|| refuse(entry.seq, "a subject opening that names no identity"))?;
                record_of(conn, tenant, entry, &openings, identity)?
            }
            None => None,
        };
        if let Some(record) = &record {
            store_consent_text(conn, tenant, record)?;
        }
        let evidence = openings.evidence.as_ref().map(|e| SaltedEvidence {
            salt: e.salt.clone(),
            jcs: evidence_jcs_of_map(&e.body),
        });
        let group_id: GroupId = group_of(conn, subject_id)?;
        let (_, leaf_hex) = write_entry(
            conn,
            tenant,
            record.as_ref().map(|r| (r, group_id)),
            subject_id,
            evidence.as_ref(),
            entry,
        )?;
        if leaf_hex != line.leaf_hash {
            return Err(refuse(entry.seq, "the re-appended entry has another leaf hash"));
        }
        match entry.kind {
            EntryType::Erasure => erase(conn, master, tenant, entry, subject_id)?,
            EntryType::IdentityLinked => {
                restore_link(conn, master, tenant, entry, &openings, subject_id)?
            }
            EntryType::OptOut if closes_group(&openings) => {
                close_subjects(conn, group_id, entry.seq, entry.recorded_at.millis())?;
            }
            _ => {}
        }
        Ok(())
    })
}

/// An opt-out that closed its group: a changed number (docs/identities.md).
fn closes_group(openings: &Openings) -> bool {
    openings
        .evidence
        .as_ref()
        .and_then(|e| e.body.get("reason"))
        .is_some_and(|reason| reason == "number changed")
}

/// A link re-appended: the other subject found or made from its opening,
/// the link kept (its business account is not in the export, so later
/// messages cannot contradict it), and the two groups merged.
fn restore_link(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    entry: &Entry,
    openings: &Openings,
    subject_id: SubjectId,
) -> Result<(), RestoreError> {
    let linked = entry
        .linked
        .as_deref()
        .ok_or_else(|| refuse(entry.seq, "a link without `linked`"))?;
    let opening = openings.linked.as_ref().and_then(Option::as_ref);
    let at = entry.recorded_at.millis();
    let linked_id = subject_of(conn, master, tenant, linked, opening, at)?;
    let captured_at = entry.captured_at.unwrap_or(entry.recorded_at);
    let link = (subject_id, linked_id, captured_at);
    keep_link(conn, tenant, entry.seq, link)?;
    Ok(())
}

/// The subject of a commitment, made if the database has not seen it: with
/// its identity and salt when opened, as erased when not.
fn subject_of(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    commitment: &str,
    opening: Option<&SubjectOpening>,
    at: i64,
) -> Result<SubjectId, RestoreError> {
    if let Some(id) = subject_by_commitment(conn, tenant, commitment)? {
        return Ok(id);
    }
    let opened = opening.and_then(|s| s.identity().map(|identity| (identity, s.salt.as_str())));
    let erased_at = opening.is_none().then_some(at);
    Ok(insert_subject(
        conn,
        master,
        tenant,
        commitment,
        opened,
        (at, erased_at),
    )?)
}

/// What the entry records, for the consent state a check reads.
fn record_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    entry: &Entry,
    openings: &Openings,
    identity: &str,
) -> Result<Option<Record>, RestoreError> {
    let seq = entry.seq;
    let identity =
        Identity::from_stored(identity).ok_or_else(|| refuse(seq, "unreadable identity"))?;
    let channel = entry
        .channel
        .as_deref()
        .and_then(CaptureChannel::parse)
        .unwrap_or(CaptureChannel::Api);
    let captured_at = entry.captured_at.unwrap_or(entry.recorded_at);
    let names = |list: &Option<Vec<String>>| list.clone().unwrap_or_default();
    let purposes = names(&entry.purposes)
        .iter()
        .filter_map(|n| Purpose::ALL.into_iter().find(|p| p.as_str() == n))
        .collect();
    let message_channels = names(&entry.message_channels)
        .iter()
        .filter_map(|n| MessageChannel::ALL.into_iter().find(|c| c.as_str() == n))
        .collect();
    Ok(match entry.kind {
        EntryType::OptIn => {
            // Its code is not in the export: it waits for the
            // confirmation entry the export may hold, never for a message.
            let confirmation =
                (entry.confirmation_required == Some(true)).then(|| PendingConfirmation {
                    code_sha256: String::new(),
                    expires_at: confirmation::expires_at(entry.recorded_at),
                });
            let (brand_id, shown) = brand_of(conn, tenant, entry)?;
            Some(Record::OptIn(OptInRecord {
                draft: OptInDraft {
                    identity,
                    channel,
                    company_name_shown: shown,
                    consent_text: openings.consent_text.clone().unwrap_or_default(),
                    purposes,
                    message_channels,
                    captured_at,
                    language: entry.language.clone(),
                    backfill: entry.backfill == Some(true),
                    evidence: Evidence::from_pairs([]),
                },
                brand_id,
                confirmation,
            }))
        }
        EntryType::OptOut => {
            let lift_class = lift_class_of(entry, openings);
            Some(Record::OptOut(OptOutRecord {
                identity,
                channel,
                purposes,
                message_channels,
                captured_at,
                backfill: entry.backfill == Some(true),
                evidence: Evidence::from_pairs([]),
                lift_class,
            }))
        }
        EntryType::OptOutLifted => Some(Record::Lift(LiftRecord {
            identity,
            channel,
            captured_at,
            evidence: Evidence::from_pairs([]),
            lifts: entry
                .lifts
                .ok_or_else(|| refuse(seq, "a lift without `lifts`"))?,
        })),
        EntryType::Confirmation => Some(Record::Confirm(ConfirmRecord {
            identity,
            channel,
            captured_at,
            evidence: Evidence::from_pairs([]),
            confirms: entry
                .confirms
                .ok_or_else(|| refuse(seq, "a confirmation without `confirms`"))?,
        })),
        EntryType::Erasure | EntryType::IdentityLinked => None,
    })
}

/// The brand an opt-in was given to, by the name it showed; added if the
/// restored database does not have it yet.
fn brand_of(
    conn: &mut DbConn,
    tenant: &TenantId,
    entry: &Entry,
) -> Result<(BrandId, String), RestoreError> {
    let shown = entry.company_name_shown.clone().unwrap_or_default();
    let brand = match find_brand(conn, tenant, &shown)? {
        Some(brand) => brand,
        None => insert_brand(conn, tenant, &shown, entry.recorded_at.millis())?,
    };
    Ok((BrandId(brand.id), shown))
}

/// Which messages may lift an opt-out follows from how it was recorded: a
/// webhook's WhatsApp marketing stop (its evidence has `preference`) or
/// keyword; the API's and the pages' none.
fn lift_class_of(entry: &Entry, openings: &Openings) -> Option<LiftClass> {
    let preference = openings
        .evidence
        .as_ref()
        .is_some_and(|e| e.body.contains_key("preference"));
    entry
        .collector
        .starts_with("webhook:")
        .then_some(if preference {
            LiftClass::MarketingPreference
        } else {
            LiftClass::Keyword
        })
}

/// An erasure forgets the subject again; one on request suppresses its
/// identity when the database still knows it and the subject is the
/// identity's newest (else a warning says it could not).
fn erase(
    conn: &mut DbConn,
    master: &MasterKey,
    tenant: &TenantId,
    entry: &Entry,
    subject_id: SubjectId,
) -> Result<(), RestoreError> {
    let identity = identity_of(conn, subject_id)?;
    let at = entry.recorded_at.millis();
    match identity.as_deref() {
        Some(identity) => {
            let feed_hash = master.feed_hash(tenant, identity);
            let seq = entry.seq as i64;
            keep_erased_hash(conn, tenant, seq, (&feed_hash, None), at)?;
            let hash = master.identity_hash(tenant, identity);
            let newest = newest_subject_by_hash(conn, tenant, &hash)?.map(|s| s.id);
            if newest == Some(subject_id) {
                if entry.reason.as_deref() == Some("request") {
                    suppress(conn, tenant, &hash, at)?;
                }
                forget_identity(conn, master, tenant, identity)?;
            }
            forget_windows(conn, &[subject_id])?;
            forget_subject(conn, tenant, subject_id, at)?;
        }
        None if entry.reason.as_deref() == Some("request") => {
            tracing::warn!(
                seq = entry.seq,
                subject = %entry.subject,
                "an erasure on request of a subject this database never opened: its number cannot be suppressed again"
            );
        }
        None => {}
    }
    Ok(mark_erased(conn, subject_id, at)?)
}
