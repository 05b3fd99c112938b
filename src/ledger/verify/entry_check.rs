//! One entry line checked on its own: its shape, its hashes and what its
//! openings open.

use super::failure::*;
use super::lines::*;
use crate::domain::identity::is_user_id;
use crate::domain::time::Timestamp;
use crate::ledger::canonical::read_canonical_entry;
use crate::ledger::commitment::{evidence_commitment_bytes, subject_commitment_bytes};
use crate::ledger::entry::{EntryRef, EntryType};
use crate::ledger::hash::{parse_hash, sha256};
use crate::ledger::merkle::{self, Hash};
use std::borrow::Cow;

pub(super) fn hash_hex(text: &str) -> Option<Hash> {
    parse_hash(text)
}

pub(super) fn proof_hashes<S: AsRef<str>>(
    place: &Place,
    proof: &[S],
) -> Result<Vec<Hash>, Failure> {
    proof
        .iter()
        .map(|h| {
            hash_hex(h.as_ref()).ok_or_else(|| Failure {
                place: place.clone(),
                what: "a proof hash is not 64 lowercase hex".into(),
            })
        })
        .collect()
}

pub(super) fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

pub(super) fn sorted_subset(list: &[Cow<'_, str>], allowed: &[&str]) -> bool {
    !list.is_empty()
        && list.windows(2).all(|w| w[0] < w[1])
        && list.iter().all(|x| allowed.contains(&x.as_ref()))
}

/// An entry's hashes, decoded once.
pub(super) struct EntryHashes {
    pub(super) prev: Hash,
    pub(super) subject: Hash,
    /// The other identity's commitment (`identity_linked` only).
    pub(super) linked: Option<Hash>,
    pub(super) evidence: Option<Hash>,
    pub(super) consent_text: Option<Hash>,
}

/// The fields each type carries (docs/ledger-format.md), and canonical values.
pub(super) fn check_shape(e: &EntryRef<'_>) -> Result<EntryHashes, String> {
    check_fields_present(e)?;
    if e.v != 1 {
        return Err(format!("unknown version v={}", e.v));
    }
    for (name, n) in [
        ("seq", Some(e.seq)),
        ("confirms", e.confirms),
        ("lifts", e.lifts),
    ] {
        if n.is_some_and(|n| n >= 1 << 53) {
            return Err(format!("{name} is not below 2^53"));
        }
    }
    let decode =
        |name: &str, v: &str| hash_hex(v).ok_or_else(|| format!("{name} is not 64 lowercase hex"));
    let hashes = EntryHashes {
        prev: decode("prev", &e.prev)?,
        subject: decode("subject", &e.subject)?,
        linked: e
            .linked
            .as_deref()
            .map(|v| decode("linked", v))
            .transpose()?,
        evidence: e
            .evidence_sha256
            .as_deref()
            .map(|v| decode("evidence_sha256", v))
            .transpose()?,
        consent_text: e
            .consent_text_sha256
            .as_deref()
            .map(|v| decode("consent_text_sha256", v))
            .transpose()?,
    };
    check_field_values(e)?;
    if hashes.linked == Some(hashes.subject) {
        return Err("linked is the entry's own subject".into());
    }
    Ok(hashes)
}

/// Each field present exactly for the types that carry it.
fn check_fields_present(e: &EntryRef<'_>) -> Result<(), String> {
    use EntryType::*;
    let t = e.kind;
    let has = |present: bool, name: &str, wanted: bool| -> Result<(), String> {
        match (present, wanted) {
            (true, false) => Err(format!("{} must not carry {name}", t.as_str())),
            (false, true) => Err(format!("{} lacks {name}", t.as_str())),
            _ => Ok(()),
        }
    };
    let events = matches!(
        t,
        OptIn | OptOut | Confirmation | OptOutLifted | IdentityLinked
    );
    let consents = matches!(t, OptIn | OptOut);
    has(e.channel.is_some(), "channel", events)?;
    has(e.captured_at.is_some(), "captured_at", events)?;
    has(e.evidence_sha256.is_some(), "evidence_sha256", events)?;
    has(e.purposes.is_some(), "purposes", consents)?;
    has(e.message_channels.is_some(), "message_channels", consents)?;
    has(
        e.company_name_shown.is_some(),
        "company_name_shown",
        t == OptIn,
    )?;
    has(
        e.consent_text_sha256.is_some(),
        "consent_text_sha256",
        t == OptIn,
    )?;
    if e.language.is_some() && t != OptIn {
        return Err(format!("{} must not carry language", t.as_str()));
    }
    if e.backfill.is_some() && !consents {
        return Err(format!("{} must not carry backfill", t.as_str()));
    }
    if e.confirmation_required.is_some() && t != OptIn {
        return Err(format!(
            "{} must not carry confirmation_required",
            t.as_str()
        ));
    }
    if e.backfill == Some(false) || e.confirmation_required == Some(false) {
        return Err("backfill and confirmation_required appear only when true".into());
    }
    has(e.confirms.is_some(), "confirms", t == Confirmation)?;
    has(e.lifts.is_some(), "lifts", t == OptOutLifted)?;
    has(e.linked.is_some(), "linked", t == IdentityLinked)?;
    has(e.reason.is_some(), "reason", t == Erasure)
}

/// Sets are sorted and known; channels and reasons are known values.
fn check_field_values(e: &EntryRef<'_>) -> Result<(), String> {
    if let Some(p) = &e.purposes {
        if !sorted_subset(p, &["authentication", "marketing", "utility"]) {
            return Err("purposes are not a sorted, de-duplicated set of purposes".into());
        }
    }
    if let Some(m) = &e.message_channels {
        if !sorted_subset(m, &["sms", "whatsapp"]) {
            return Err("message_channels are not a sorted, de-duplicated set".into());
        }
    }
    if let Some(c) = &e.channel {
        let allowed: &[&str] = if e.kind == EntryType::OptIn {
            &["sms", "web", "whatsapp", "ivr", "paper"]
        } else {
            &["sms", "web", "whatsapp", "ivr", "paper", "api"]
        };
        if !allowed.contains(&c.as_ref()) {
            return Err(format!("unknown channel {c:?}"));
        }
    }
    if let Some(r) = &e.reason {
        if r != "request" && r != "retention" {
            return Err(format!("unknown erasure reason {r:?}"));
        }
    }
    Ok(())
}

/// Checks each opening against its commitment; `true` when it opened.
pub(super) fn check_openings(e: &EntryHashes, o: &OpeningView<'_>) -> Result<bool, String> {
    if o.erased {
        if o.subject.is_some()
            || o.evidence.is_some()
            || o.consent_text.is_some()
            || o.linked.is_some_and(|l| l.is_some())
        {
            return Err("an erased entry carries openings".into());
        }
        if e.linked.is_some() != o.linked.is_some() {
            return Err("`linked` is in the openings exactly of identity_linked entries".into());
        }
        return Ok(false);
    }
    let subject = o.subject.ok_or("subject opening missing")?;
    check_identity(subject, &e.subject, "subject")?;
    match (&e.linked, &o.linked) {
        (Some(commitment), Some(Some(linked))) => check_identity(*linked, commitment, "linked")?,
        (Some(_), Some(None)) => {
            return Err("the linked opening is null on an entry that is not erased".into())
        }
        (Some(_), None) => return Err("the linked opening is missing".into()),
        (None, Some(_)) => {
            return Err("openings carry `linked` for an entry that links nothing".into())
        }
        (None, None) => {}
    }
    match (&e.evidence, &o.evidence) {
        (Some(commitment), Some((salt, canonical))) => {
            if &evidence_commitment_bytes(salt, canonical) != commitment {
                return Err("evidence opening does not match evidence_sha256".into());
            }
        }
        (Some(_), None) => return Err("evidence opening missing".into()),
        (None, Some(_)) => return Err("an evidence opening for an entry without evidence".into()),
        (None, None) => {}
    }
    match (&e.consent_text, o.consent_text) {
        (Some(hash), Some(text)) => {
            if &sha256(text.as_bytes()) != hash {
                return Err("consent text does not match consent_text_sha256".into());
            }
        }
        (Some(_), None) => return Err("consent text missing".into()),
        (None, Some(_)) => return Err("a consent text for an entry without one".into()),
        (None, None) => {}
    }
    Ok(true)
}

/// An identity's opening: a number in E.164 or a user id (docs/identities.md),
/// a salt of 64 lowercase hex, and together the commitment.
fn check_identity(o: IdentityOpening<'_>, commitment: &Hash, what: &str) -> Result<(), String> {
    let identity = match o.identity {
        Some(Identity::Number(n)) if is_e164(n) => n,
        Some(Identity::Number(_)) => {
            return Err(format!("the {what}'s opened number is not E.164"))
        }
        Some(Identity::UserId(u)) if is_user_id(u) => u,
        Some(Identity::UserId(_)) => {
            return Err(format!("the {what}'s opened user id is malformed"))
        }
        None => {
            return Err(format!(
                "the {what} opening names neither exactly one e164 nor user_id"
            ))
        }
    };
    if hash_hex(o.salt).is_none() {
        return Err(format!("the {what} salt is not 64 lowercase hex"));
    }
    if &subject_commitment_bytes(o.salt, identity) != commitment {
        return Err(format!("the {what} opening does not match its commitment"));
    }
    Ok(())
}

/// One entry line, checked on its own (in parallel with others).
pub(super) struct CheckedLine {
    pub(super) seq: u64,
    pub(super) subject: Hash,
    /// The other identity an `identity_linked` entry joins to `subject`.
    pub(super) linked: Option<Hash>,
    pub(super) leaf: Hash,
    pub(super) prev: Hash,
    pub(super) recorded_at: Timestamp,
    pub(super) opened: bool,
    pub(super) proof: Option<Vec<Hash>>,
}

/// What checking one entry established.
pub struct EntryChecked {
    pub leaf: Hash,
    pub subject: Hash,
    /// The other identity an `identity_linked` entry joins to `subject`.
    pub linked: Option<Hash>,
    pub prev: Hash,
    /// Its openings were given and open its commitments.
    pub opened: bool,
}

/// Checks one entry on its own: its log, its shape, its leaf hash and its
/// openings (when given).
pub fn check_entry(
    entry: &EntryRef<'_>,
    leaf_hash: &str,
    openings: Option<&OpeningView<'_>>,
    log: &str,
) -> Result<EntryChecked, String> {
    let leaf = merkle::hash_leaf(entry.canonical_json().as_bytes());
    check_hashed_entry(entry, leaf, leaf_hash, openings, log)
}

/// The checks of [`check_entry`], given the leaf hash of its canonical bytes.
pub(super) fn check_hashed_entry(
    entry: &EntryRef<'_>,
    leaf: Hash,
    leaf_hash: &str,
    openings: Option<&OpeningView<'_>>,
    log: &str,
) -> Result<EntryChecked, String> {
    if entry.log != log {
        return Err(format!("log {:?} is not the key's log {log:?}", entry.log));
    }
    let hashes = check_shape(entry)?;
    if hash_hex(leaf_hash) != Some(leaf) {
        return Err("leaf_hash does not match the entry".into());
    }
    let opened = match openings {
        Some(o) => check_openings(&hashes, o)?,
        None => false,
    };
    Ok(EntryChecked {
        leaf,
        subject: hashes.subject,
        linked: hashes.linked,
        prev: hashes.prev,
        opened,
    })
}

/// The export lines this service writes, `{"entry":<canonical bytes>,
/// "leaf_hash":…,"openings":…}`, checked without re-serialising the entry:
/// its bytes are hashed as they are. `None`: take the general path.
pub(super) fn check_export_line_fast(
    line: &str,
    log: &str,
) -> Option<Result<CheckedLine, Failure>> {
    const HEAD: &str = "{\"entry\":";
    const LEAF: &str = ",\"leaf_hash\":\"";
    const OPENINGS: &str = "\",\"openings\":";
    let rest = line.strip_prefix(HEAD)?;
    let (entry, end) = read_canonical_entry(rest)?;
    let raw = &rest[..end];
    let after = rest[end..].strip_prefix(LEAF)?;
    let leaf_hash = after.get(..64)?;
    let openings_text = after.get(64..)?.strip_prefix(OPENINGS)?.strip_suffix('}')?;
    let openings: Option<OpeningsRef<'_>> = serde_json::from_str(openings_text).ok()?;
    let place = Place::Seq(entry.seq);
    let view = openings.as_ref().map(OpeningView::of_ref);
    let leaf = merkle::hash_leaf(raw.as_bytes());
    Some(
        check_hashed_entry(&entry, leaf, leaf_hash, view.as_ref(), log)
            .map(|checked| CheckedLine {
                seq: entry.seq,
                leaf: checked.leaf,
                subject: checked.subject,
                linked: checked.linked,
                prev: checked.prev,
                recorded_at: entry.recorded_at,
                opened: checked.opened,
                proof: None,
            })
            .map_err(|what| Failure { place, what }),
    )
}

pub(super) fn check_line(line_no: u64, line: &str, log: &str) -> Result<CheckedLine, Failure> {
    if let Some(checked) = check_export_line_fast(line, log) {
        return checked;
    }
    let parsed: EntryLine<'_> = serde_json::from_str(line).map_err(|e| Failure {
        place: Place::Line(line_no),
        what: format!("not an entry line: {e}"),
    })?;
    let seq = parsed.entry.seq;
    let place = Place::Seq(seq);
    let view = parsed.openings.as_ref().map(OpeningView::of_ref);
    let checked =
        check_entry(&parsed.entry, &parsed.leaf_hash, view.as_ref(), log).map_err(|what| {
            Failure {
                place: place.clone(),
                what,
            }
        })?;
    let proof = parsed
        .inclusion_proof
        .as_deref()
        .map(|p| proof_hashes(&place, p))
        .transpose()?;
    Ok(CheckedLine {
        seq,
        subject: checked.subject,
        linked: checked.linked,
        leaf: checked.leaf,
        prev: checked.prev,
        recorded_at: parsed.entry.recorded_at,
        opened: checked.opened,
        proof,
    })
}
