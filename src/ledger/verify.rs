//! Offline verification (SPEC section 6) of an export, a dossier or a
//! receipt, trusting only the verifier key given: the key name, checkpoint
//! origin and every entry's `log` agree; every opening opens its commitment;
//! numbers are E.164; the chain and the recomputed root (exports) or the
//! inclusion proofs (dossiers, receipts) lead to the signed checkpoint;
//! `recorded_at` never decreases; trusted checkpoints are consistent with it.
//!
//! Pure: it reads lines it is given. Entry lines are checked in parallel.

use super::canonical::read_canonical_entry;
use super::entry::{
    evidence_commitment_bytes, jcs, jcs_string_map, parse_hash, sha256, subject_commitment_bytes,
    EntryRef, EntryType, Openings,
};
use super::merkle::{self, Accumulator, Hash};
use super::note::{open_checkpoint, Checkpoint, Verifier};
use crate::domain::time::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, Read};

/// Where a verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Header,
    Seq(u64),
    Line(u64),
    Checkpoint,
}

/// A verification failure: `seq N: <what failed>` and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub place: Place,
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Header => write!(f, "header: {}", self.what),
            Place::Seq(n) => write!(f, "seq {n}: {}", self.what),
            Place::Line(n) => write!(f, "line {n}: {}", self.what),
            Place::Checkpoint => write!(f, "checkpoint: {}", self.what),
        }
    }
}

fn fail<T>(place: Place, what: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        place,
        what: what.into(),
    })
}

/// What went wrong: unreadable input (exit 2) or a failed check (exit 1).
#[derive(Debug)]
pub enum VerifyError {
    Unreadable(String),
    Failed(Failure),
}

fn failed(place: Place, what: impl Into<String>) -> VerifyError {
    VerifyError::Failed(Failure {
        place,
        what: what.into(),
    })
}

impl From<Failure> for VerifyError {
    fn from(f: Failure) -> Self {
        VerifyError::Failed(f)
    }
}

/// The kinds of documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Export,
    Dossier,
    Receipt,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub kind: DocumentKind,
    pub log: String,
    pub tree_size: u64,
    pub entries: u64,
    /// Entries whose openings were checked (not erased, not withheld).
    pub opened: u64,
}

/// A trusted checkpoint an auditor kept earlier.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub size: u64,
    pub root: Hash,
}

/// Verifies a kept checkpoint note with the key.
pub fn trusted_checkpoint(note: &str, key: &Verifier) -> Result<Trusted, String> {
    let cp = open_checkpoint(note, key).map_err(|e| e.to_string())?;
    if cp.origin != key.name {
        return Err(format!(
            "its origin {:?} is not the key's log {:?}",
            cp.origin, key.name
        ));
    }
    Ok(Trusted {
        size: cp.size,
        root: cp.root,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    log: String,
    tree_size: u64,
    verifier_key: String,
    #[serde(default)]
    filtered: bool,
}

/// An entry line, borrowing from the line's text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine<'a> {
    #[serde(borrow)]
    entry: EntryRef<'a>,
    #[serde(borrow)]
    leaf_hash: Cow<'a, str>,
    #[serde(borrow)]
    openings: Option<OpeningsRef<'a>>,
    #[serde(borrow, default)]
    inclusion_proof: Option<Vec<Cow<'a, str>>>,
}

/// Openings as they arrive in a file (SPEC section 6, exact).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpeningsRef<'a> {
    #[serde(borrow)]
    subject: Option<SubjectRef<'a>>,
    #[serde(borrow)]
    evidence: Option<EvidenceRef<'a>>,
    #[serde(borrow)]
    consent_text: Option<Cow<'a, str>>,
    erased: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectRef<'a> {
    #[serde(borrow)]
    e164: Cow<'a, str>,
    #[serde(borrow)]
    salt: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceRef<'a> {
    #[serde(borrow)]
    salt: Cow<'a, str>,
    #[serde(borrow)]
    body: EvidenceBody<'a>,
}

/// An evidence body: a flat object of strings, borrowed where possible
/// (all the service writes), or any other JSON object.
enum EvidenceBody<'a> {
    Strings(Vec<(Cow<'a, str>, Cow<'a, str>)>),
    Other(serde_json::Map<String, serde_json::Value>),
}

/// A string that borrows from the input when it has no escapes.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = BorrowedStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// A value of an evidence body: a string, or anything else as JSON.
enum BodyValue<'a> {
    Str(Cow<'a, str>),
    Other(serde_json::Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for BodyValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde_json::Value;
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = BodyValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BodyValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BodyValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(BodyValue::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(BodyValue::Other(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(BodyValue::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(BodyValue::Other)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EvidenceBody<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = EvidenceBody<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs: Vec<(Cow<'a, str>, BodyValue<'a>)> = Vec::with_capacity(8);
                while let Some(BorrowedStr(key)) = map.next_key()? {
                    pairs.push((key, map.next_value()?));
                }
                let mut seen: Vec<&str> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
                seen.sort_unstable();
                if seen.windows(2).any(|w| w[0] == w[1]) {
                    // Which value counts would depend on the reader.
                    return Err(serde::de::Error::custom(
                        "duplicate key in the evidence body",
                    ));
                }
                if pairs.iter().all(|(_, v)| matches!(v, BodyValue::Str(_))) {
                    {
                        return Ok(EvidenceBody::Strings(
                            pairs
                                .into_iter()
                                .map(|(k, v)| match v {
                                    BodyValue::Str(v) => (k, v),
                                    BodyValue::Other(_) => unreachable!("all strings"),
                                })
                                .collect(),
                        ));
                    }
                }
                // Anything else goes through the general encoder.
                Ok(EvidenceBody::Other(
                    pairs
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                BodyValue::Str(s) => serde_json::Value::String(s.into_owned()),
                                BodyValue::Other(v) => v,
                            };
                            (k.into_owned(), v)
                        })
                        .collect(),
                ))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Openings in the form the checks read, from a file or from the database.
pub struct OpeningView<'x> {
    pub erased: bool,
    /// (e164, salt)
    pub subject: Option<(&'x str, &'x str)>,
    /// (salt, RFC 8785 form of the body)
    pub evidence: Option<(&'x str, String)>,
    pub consent_text: Option<&'x str>,
}

impl<'x> OpeningView<'x> {
    /// From stored openings (`verify-db`).
    pub fn of(o: &'x Openings) -> Self {
        Self {
            erased: o.erased,
            subject: o
                .subject
                .as_ref()
                .map(|s| (s.e164.as_str(), s.salt.as_str())),
            evidence: o
                .evidence
                .as_ref()
                .map(|e| (e.salt.as_str(), evidence_jcs_of_map(&e.body))),
            consent_text: o.consent_text.as_deref(),
        }
    }

    fn of_ref(o: &'x OpeningsRef<'_>) -> Self {
        Self {
            erased: o.erased,
            subject: o
                .subject
                .as_ref()
                .map(|s| (s.e164.as_ref(), s.salt.as_ref())),
            evidence: o
                .evidence
                .as_ref()
                .map(|e| (e.salt.as_ref(), evidence_jcs_of_body(&e.body))),
            consent_text: o.consent_text.as_deref(),
        }
    }
}

/// RFC 8785 form of an evidence body from a file.
fn evidence_jcs_of_body(body: &EvidenceBody<'_>) -> String {
    match body {
        EvidenceBody::Strings(pairs) => {
            jcs_string_map(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        }
        EvidenceBody::Other(map) => jcs(map),
    }
}

fn evidence_jcs_of_map(body: &serde_json::Map<String, serde_json::Value>) -> String {
    if body.values().all(|v| v.is_string()) {
        jcs_string_map(
            body.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
        )
    } else {
        jcs(body)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyLine {
    consistency: ConsistencyBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyBody {
    from: u64,
    to: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointLine {
    checkpoint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Receipt<'a> {
    format: String,
    #[serde(borrow)]
    entry: EntryRef<'a>,
    leaf_hash: String,
    tree_size: u64,
    inclusion_proof: Vec<String>,
    checkpoint: String,
    verifier_key: String,
    #[serde(borrow)]
    openings: OpeningsRef<'a>,
}

fn hash_hex(text: &str) -> Option<Hash> {
    parse_hash(text)
}

fn proof_hashes<S: AsRef<str>>(place: &Place, proof: &[S]) -> Result<Vec<Hash>, Failure> {
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

fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn sorted_subset(list: &[Cow<'_, str>], allowed: &[&str]) -> bool {
    !list.is_empty()
        && list.windows(2).all(|w| w[0] < w[1])
        && list.iter().all(|x| allowed.contains(&x.as_ref()))
}

/// An entry's hashes, decoded once.
struct EntryHashes {
    prev: Hash,
    subject: Hash,
    evidence: Option<Hash>,
    consent_text: Option<Hash>,
}

/// The fields each type carries (SPEC section 5), and canonical values.
fn check_shape(e: &EntryRef<'_>) -> Result<EntryHashes, String> {
    use EntryType::*;
    let t = e.kind;
    let has = |present: bool, name: &str, wanted: bool| -> Result<(), String> {
        match (present, wanted) {
            (true, false) => Err(format!("{} must not carry {name}", t.as_str())),
            (false, true) => Err(format!("{} lacks {name}", t.as_str())),
            _ => Ok(()),
        }
    };
    let events = matches!(t, OptIn | OptOut | Confirmation | OptOutLifted);
    has(e.channel.is_some(), "channel", events)?;
    has(e.captured_at.is_some(), "captured_at", events)?;
    has(e.evidence_sha256.is_some(), "evidence_sha256", events)?;
    has(
        e.purposes.is_some(),
        "purposes",
        matches!(t, OptIn | OptOut),
    )?;
    has(
        e.message_channels.is_some(),
        "message_channels",
        matches!(t, OptIn | OptOut),
    )?;
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
    if e.backfill.is_some() && !matches!(t, OptIn | OptOut) {
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
    has(e.reason.is_some(), "reason", t == Erasure)?;
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
        let allowed: &[&str] = if t == OptIn {
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
    Ok(hashes)
}

/// Checks each opening against its commitment; `true` when it opened.
fn check_openings(e: &EntryHashes, o: &OpeningView<'_>) -> Result<bool, String> {
    if o.erased {
        if o.subject.is_some() || o.evidence.is_some() || o.consent_text.is_some() {
            return Err("an erased entry carries openings".into());
        }
        return Ok(false);
    }
    let (e164, salt) = o.subject.ok_or("subject opening missing")?;
    if !is_e164(e164) {
        return Err("the opened number is not E.164".into());
    }
    if hash_hex(salt).is_none() {
        return Err("the subject salt is not 64 lowercase hex".into());
    }
    if subject_commitment_bytes(salt, e164) != e.subject {
        return Err("subject opening does not match the subject commitment".into());
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

/// One entry line, checked on its own (in parallel with others).
struct CheckedLine {
    seq: u64,
    subject: Hash,
    leaf: Hash,
    prev: Hash,
    recorded_at: Timestamp,
    opened: bool,
    proof: Option<Vec<Hash>>,
}

/// What checking one entry established.
pub struct EntryChecked {
    pub leaf: Hash,
    pub subject: Hash,
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
fn check_hashed_entry(
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
        prev: hashes.prev,
        opened,
    })
}

/// The export lines this service writes, `{"entry":<canonical bytes>,
/// "leaf_hash":…,"openings":…}`, checked without re-serialising the entry:
/// its bytes are hashed as they are. `None`: take the general path.
fn check_export_line_fast(line: &str, log: &str) -> Option<Result<CheckedLine, Failure>> {
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
                prev: checked.prev,
                recorded_at: entry.recorded_at,
                opened: checked.opened,
                proof: None,
            })
            .map_err(|what| Failure { place, what }),
    )
}

fn check_line(line_no: u64, line: &str, log: &str) -> Result<CheckedLine, Failure> {
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
        leaf: checked.leaf,
        prev: checked.prev,
        recorded_at: parsed.entry.recorded_at,
        opened: checked.opened,
        proof,
    })
}

/// Entry lines read together: one text and where each line lies in it.
#[derive(Default)]
struct Batch {
    text: String,
    lines: Vec<(u64, std::ops::Range<usize>)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Checks a batch of lines on all cores, keeping their order. Workers take
/// small chunks from a shared counter, so none idles while another works.
fn check_batch(batch: &Batch, log: &str) -> Vec<Result<CheckedLine, Failure>> {
    const CHUNK: usize = 256;
    let check = |(n, range): &(u64, std::ops::Range<usize>)| {
        check_line(*n, &batch.text[range.clone()], log)
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch.lines.len().div_ceil(CHUNK).max(1));
    if workers <= 1 {
        return batch.lines.iter().map(check).collect();
    }
    let chunks: Vec<&[(u64, std::ops::Range<usize>)]> = batch.lines.chunks(CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Vec<Result<CheckedLine, Failure>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        mine.push((i, chunk.iter().map(check).collect::<Vec<_>>()));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification worker panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

/// Lines per parallel batch.
const BATCH: usize = 16_384;

/// The longest line (and receipt, and tail) read: a bound on memory for
/// hostile input.
const MAX_LINE: usize = 64 << 20;

fn too_long() -> VerifyError {
    VerifyError::Unreadable(format!(
        "a line or document longer than {} MiB",
        MAX_LINE >> 20
    ))
}

/// Appends everything left of `input`, at most [`MAX_LINE`] bytes.
fn read_rest(input: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<(), VerifyError> {
    let start = buf.len();
    input
        .take(MAX_LINE as u64 + 1)
        .read_to_end(buf)
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    if buf.len() - start > MAX_LINE {
        return Err(too_long());
    }
    Ok(())
}

/// Reads one line (without its end) into `buf`; `false` at the end of input.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, VerifyError> {
    buf.clear();
    let n = input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    if buf.len() > MAX_LINE {
        return Err(too_long());
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(n > 0)
}

fn utf8(bytes: Vec<u8>) -> Result<String, VerifyError> {
    String::from_utf8(bytes).map_err(|_| VerifyError::Unreadable("the file is not UTF-8".into()))
}

/// Reads entry lines in batches, a block at a time straight into one
/// reused buffer; the first line that is not an entry starts the tail.
struct BatchReader<R> {
    input: R,
    line_no: u64,
    tail: Vec<String>,
    done: bool,
    /// A partial line left over from the last block.
    carry: Vec<u8>,
    /// The buffer of a batch already checked, reused.
    spare: Vec<u8>,
}

/// Bytes read per block.
const BLOCK: usize = 1 << 20;

impl<R: BufRead> BatchReader<R> {
    fn new(input: R, line_no: u64) -> Self {
        Self {
            input,
            line_no,
            tail: Vec::new(),
            done: false,
            carry: Vec::new(),
            spare: Vec::new(),
        }
    }

    fn is_entry_line(line: &[u8]) -> bool {
        let starts = |p: &[u8]| line.starts_with(p);
        starts(b"{\"entry\"")
            || (!starts(b"{\"checkpoint\"")
                && !starts(b"{\"consistency\"")
                && memchr::memmem::find(line, b"\"entry\"").is_some())
    }

    /// Gives back a checked batch's buffer for the next read.
    fn recycle(&mut self, batch: Batch) {
        self.spare = batch.text.into_bytes();
    }

    fn next_batch(&mut self) -> Result<Batch, VerifyError> {
        let mut bytes = std::mem::take(&mut self.spare);
        bytes.clear();
        bytes.append(&mut self.carry);
        let mut lines = Vec::with_capacity(BATCH);
        let mut pos = 0;
        'fill: while !self.done {
            while let Some(nl) = memchr::memchr(b'\n', &bytes[pos..]) {
                let (start, mut end) = (pos, pos + nl);
                pos = end + 1;
                if end > start && bytes[end - 1] == b'\r' {
                    end -= 1;
                }
                self.line_no += 1;
                if Self::is_entry_line(&bytes[start..end]) {
                    lines.push((self.line_no, start..end));
                    if lines.len() == BATCH {
                        self.carry.extend_from_slice(&bytes[pos..]);
                        bytes.truncate(pos);
                        break 'fill;
                    }
                } else {
                    // The tail: this line and everything after it.
                    let mut rest = bytes.split_off(start);
                    read_rest(&mut self.input, &mut rest)?;
                    let rest = utf8(rest)?;
                    self.tail.extend(rest.lines().map(str::to_owned));
                    self.done = true;
                    break 'fill;
                }
            }
            if bytes.len() - pos > MAX_LINE {
                return Err(too_long());
            }
            // Appends up to a block without zero-filling it first.
            let n = (&mut self.input)
                .take(BLOCK as u64)
                .read_to_end(&mut bytes)
                .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
            if n == 0 {
                // A last line without a newline.
                if pos < bytes.len() {
                    bytes.push(b'\n');
                    continue;
                }
                self.done = true;
            }
        }
        Ok(Batch {
            text: utf8(bytes)?,
            lines,
        })
    }
}

/// Verifies an export, dossier or receipt read from `input`.
pub fn verify(
    input: impl BufRead,
    key: &Verifier,
    trusted: &[Trusted],
) -> Result<Verified, VerifyError> {
    let mut input = input;
    let mut first = Vec::new();
    if !read_line(&mut input, &mut first)? {
        return Err(VerifyError::Unreadable("the file is empty".into()));
    }
    if let Ok(header) = serde_json::from_slice::<serde_json::Value>(&first) {
        if header.get("format").and_then(|f| f.as_str()) == Some("consent-ledger-export/v1") {
            let header: Header = serde_json::from_value(header).map_err(|e| {
                VerifyError::Failed(Failure {
                    place: Place::Header,
                    what: format!("malformed header: {e}"),
                })
            })?;
            return verify_lines(header, input, key, trusted);
        }
    }
    // Not NDJSON with an export header: the whole file is one JSON document.
    let mut bytes = first;
    bytes.push(b'\n');
    read_rest(&mut input, &mut bytes)?;
    let text = utf8(bytes)?;
    #[derive(Deserialize)]
    struct Format {
        format: Option<String>,
    }
    let format: Format = serde_json::from_str(&text)
        .map_err(|e| VerifyError::Unreadable(format!("neither an export nor a receipt: {e}")))?;
    match format.format.as_deref() {
        Some("consent-ledger-receipt/v1") => {
            let receipt: Receipt<'_> = serde_json::from_str(&text).map_err(|e| {
                VerifyError::Failed(Failure {
                    place: Place::Header,
                    what: format!("malformed receipt: {e}"),
                })
            })?;
            Ok(verify_receipt(receipt, key, trusted)?)
        }
        _ => Err(VerifyError::Unreadable(
            "unknown format: expected consent-ledger-export/v1 or consent-ledger-receipt/v1".into(),
        )),
    }
}

fn check_header_key(log: &str, verifier_key: &str, key: &Verifier) -> Result<(), Failure> {
    if log != key.name {
        return fail(
            Place::Header,
            format!("log {log:?} is not the key's name {:?}", key.name),
        );
    }
    if verifier_key != key.to_verifier_key() {
        return fail(
            Place::Header,
            "the embedded verifier_key differs from --key",
        );
    }
    Ok(())
}

fn open_signed(note: &str, key: &Verifier, tree_size: u64) -> Result<Checkpoint, Failure> {
    let cp = open_checkpoint(note, key).map_err(|e| Failure {
        place: Place::Checkpoint,
        what: e.to_string(),
    })?;
    if cp.origin != key.name {
        return fail(
            Place::Checkpoint,
            format!(
                "origin {:?} is not the key's name {:?}",
                cp.origin, key.name
            ),
        );
    }
    if cp.size != tree_size {
        return fail(
            Place::Checkpoint,
            format!("size {} is not the header's tree_size {tree_size}", cp.size),
        );
    }
    Ok(cp)
}

/// The in-order checks of an export or dossier: seq order, the chain,
/// `recorded_at`, the tree and the trusted sizes.
struct Fold {
    dossier: bool,
    tree_size: u64,
    acc: Accumulator,
    trusted_sizes: Vec<u64>,
    next_trusted: usize,
    roots_at: Vec<(u64, Hash)>,
    last_seq: Option<u64>,
    last_leaf: Hash,
    last_at: Option<Timestamp>,
    entries: u64,
    opened: u64,
    proofs: Vec<(u64, Hash, Vec<Hash>)>,
    /// A dossier is one person's: every entry has this subject.
    subject: Option<Hash>,
}

impl Fold {
    fn new(dossier: bool, tree_size: u64, trusted: &[Trusted]) -> Self {
        let mut trusted_sizes: Vec<u64> = trusted.iter().map(|t| t.size).collect();
        trusted_sizes.sort_unstable();
        trusted_sizes.dedup();
        let mut fold = Self {
            dossier,
            tree_size,
            acc: Accumulator::new(),
            trusted_sizes,
            next_trusted: 0,
            roots_at: Vec::new(),
            last_seq: None,
            last_leaf: [0; 32],
            last_at: None,
            entries: 0,
            opened: 0,
            proofs: Vec::new(),
            subject: None,
        };
        fold.note_trusted_roots();
        fold
    }

    /// Records the root when the tree reaches a trusted size.
    fn note_trusted_roots(&mut self) {
        while self.trusted_sizes.get(self.next_trusted) == Some(&self.acc.size()) {
            self.roots_at.push((self.acc.size(), self.acc.root()));
            self.next_trusted += 1;
        }
    }

    fn take(&mut self, results: Vec<Result<CheckedLine, Failure>>) -> Result<(), VerifyError> {
        for checked in results {
            let c = checked?;
            let place = Place::Seq(c.seq);
            match (self.dossier, self.last_seq) {
                (false, None) if c.seq != 0 => {
                    return Err(failed(place, "the export does not start at seq 0"))
                }
                (false, Some(prev)) if c.seq != prev + 1 => {
                    return Err(failed(
                        place,
                        format!(
                            "expected seq {} (an entry is missing or out of order)",
                            prev + 1
                        ),
                    ))
                }
                (true, Some(prev)) if c.seq <= prev => {
                    return Err(failed(place, "entries are not in seq order"))
                }
                _ => {}
            }
            if !self.dossier {
                let expected_prev = if c.seq == 0 { [0; 32] } else { self.last_leaf };
                if c.prev != expected_prev {
                    return Err(failed(place, "prev is not the previous entry's leaf hash"));
                }
            }
            if self.last_at.is_some_and(|t| c.recorded_at < t) {
                return Err(failed(place, "recorded_at decreases"));
            }
            if c.seq >= self.tree_size {
                return Err(failed(
                    place,
                    format!("beyond the header's tree_size {}", self.tree_size),
                ));
            }
            if self.dossier {
                if *self.subject.get_or_insert(c.subject) != c.subject {
                    return Err(failed(place, "another subject's entry in a dossier"));
                }
                let proof = c.proof.ok_or_else(|| Failure {
                    place: place.clone(),
                    what: "inclusion_proof missing".into(),
                })?;
                self.proofs.push((c.seq, c.leaf, proof));
            } else {
                if c.proof.is_some() {
                    return Err(failed(place, "an export line carries an inclusion proof"));
                }
                self.acc.push(c.leaf);
                self.note_trusted_roots();
            }
            self.last_seq = Some(c.seq);
            self.last_leaf = c.leaf;
            self.last_at = Some(c.recorded_at);
            self.entries += 1;
            self.opened += u64::from(c.opened);
        }
        Ok(())
    }
}

fn verify_lines(
    header: Header,
    input: impl BufRead,
    key: &Verifier,
    trusted: &[Trusted],
) -> Result<Verified, VerifyError> {
    if header.format != "consent-ledger-export/v1" {
        return Err(failed(Place::Header, "unknown export format"));
    }
    check_header_key(&header.log, &header.verifier_key, key)?;
    let dossier = header.filtered;
    let log = header.log.clone();
    let mut fold = Fold::new(dossier, header.tree_size, trusted);
    let mut reader = BatchReader::new(input, 1);
    let mut current = reader.next_batch()?;
    let mut pending: Option<Vec<Result<CheckedLine, Failure>>> = None;
    while !current.is_empty() || pending.is_some() {
        // The workers check this batch while this thread reads the next
        // one and folds the previous one in order.
        let (results, next, folded) = std::thread::scope(|scope| {
            let checking =
                (!current.is_empty()).then(|| scope.spawn(|| check_batch(&current, &log)));
            let next = if current.is_empty() {
                Ok(Batch::default())
            } else {
                reader.next_batch()
            };
            let folded = pending.take().map_or(Ok(()), |p| fold.take(p));
            let results = checking.map(|h| h.join().expect("a verification worker panicked"));
            (results, next, folded)
        });
        folded?;
        reader.recycle(std::mem::take(&mut current));
        pending = results;
        current = next?;
    }
    let Fold {
        acc,
        roots_at,
        entries,
        opened,
        proofs,
        ..
    } = fold;
    // The tail: an optional consistency line (dossiers), then the checkpoint.
    let tail: Vec<String> = reader
        .tail
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let (consistency, checkpoint_line) = match tail.as_slice() {
        [cp] => (None, cp),
        [c, cp] if dossier => (Some(c), cp),
        [] => return Err(failed(Place::Checkpoint, "the checkpoint line is missing")),
        _ => {
            return Err(failed(
                Place::Checkpoint,
                "unexpected lines before or after the checkpoint",
            ))
        }
    };
    let cp_line: CheckpointLine = serde_json::from_str(checkpoint_line).map_err(|e| Failure {
        place: Place::Checkpoint,
        what: format!("malformed checkpoint line: {e}"),
    })?;
    let cp = open_signed(&cp_line.checkpoint, key, header.tree_size)?;
    if dossier {
        for (seq, leaf, proof) in &proofs {
            if !merkle::verify_inclusion(leaf, *seq, cp.size, proof, &cp.root) {
                return Err(failed(
                    Place::Seq(*seq),
                    "inclusion proof does not lead to the checkpoint's root",
                ));
            }
        }
        let consistency = consistency
            .map(|c| serde_json::from_str::<ConsistencyLine>(c))
            .transpose()
            .map_err(|e| Failure {
                place: Place::Checkpoint,
                what: format!("malformed consistency line: {e}"),
            })?;
        for t in trusted {
            check_trusted_by_proof(t, &cp, consistency.as_ref().map(|c| &c.consistency))?;
        }
    } else {
        if acc.size() != header.tree_size {
            return Err(failed(
                Place::Checkpoint,
                format!(
                    "the export holds {} entries, the checkpoint {}",
                    acc.size(),
                    header.tree_size
                ),
            ));
        }
        if acc.root() != cp.root {
            return Err(failed(
                Place::Checkpoint,
                "the recomputed root is not the checkpoint's root",
            ));
        }
        for t in trusted {
            if t.size > header.tree_size {
                return Err(failed(
                    Place::Checkpoint,
                    format!(
                        "older than the trusted checkpoint of size {}: the log shrank",
                        t.size
                    ),
                ));
            }
            let root = roots_at.iter().find(|(s, _)| *s == t.size).map(|(_, r)| *r);
            if root != Some(t.root) {
                return Err(failed(Place::Checkpoint, format!("not consistent with the trusted checkpoint of size {}: history was rewritten", t.size)));
            }
        }
    }
    Ok(Verified {
        kind: if dossier {
            DocumentKind::Dossier
        } else {
            DocumentKind::Export
        },
        log,
        tree_size: header.tree_size,
        entries,
        opened,
    })
}

fn check_trusted_by_proof(
    t: &Trusted,
    cp: &Checkpoint,
    consistency: Option<&ConsistencyBody>,
) -> Result<(), Failure> {
    if t.size == cp.size {
        return if t.root == cp.root {
            Ok(())
        } else {
            fail(
                Place::Checkpoint,
                format!(
                    "a different root than the trusted checkpoint of size {}",
                    t.size
                ),
            )
        };
    }
    if t.size > cp.size {
        return fail(
            Place::Checkpoint,
            format!("older than the trusted checkpoint of size {}", t.size),
        );
    }
    let Some(c) = consistency.filter(|c| c.from == t.size && c.to == cp.size) else {
        return fail(
            Place::Checkpoint,
            format!(
                "no consistency proof from the trusted size {} to {}",
                t.size, cp.size
            ),
        );
    };
    let proof = proof_hashes(&Place::Checkpoint, &c.proof)?;
    if merkle::verify_consistency(t.size, cp.size, &t.root, &cp.root, &proof) {
        Ok(())
    } else {
        fail(
            Place::Checkpoint,
            format!(
                "not consistent with the trusted checkpoint of size {}",
                t.size
            ),
        )
    }
}

fn verify_receipt(
    r: Receipt<'_>,
    key: &Verifier,
    trusted: &[Trusted],
) -> Result<Verified, Failure> {
    if r.format != "consent-ledger-receipt/v1" {
        return fail(Place::Header, "unknown receipt format");
    }
    check_header_key(&r.entry.log, &r.verifier_key, key)?;
    let place = Place::Seq(r.entry.seq);
    let view = OpeningView::of_ref(&r.openings);
    let EntryChecked { leaf, opened, .. } =
        check_entry(&r.entry, &r.leaf_hash, Some(&view), &key.name).map_err(|what| Failure {
            place: place.clone(),
            what,
        })?;
    let cp = open_signed(&r.checkpoint, key, r.tree_size)?;
    let proof = proof_hashes(&place, &r.inclusion_proof)?;
    if !merkle::verify_inclusion(&leaf, r.entry.seq, cp.size, &proof, &cp.root) {
        return fail(
            place,
            "inclusion proof does not lead to the checkpoint's root",
        );
    }
    for t in trusted {
        // Without a consistency proof only an equal size can be compared;
        // `--from` fetches proofs online (not in this build).
        if t.size != cp.size || t.root != cp.root {
            return fail(
                Place::Checkpoint,
                format!(
                    "cannot be checked against the trusted checkpoint of size {} offline",
                    t.size
                ),
            );
        }
    }
    Ok(Verified {
        kind: DocumentKind::Receipt,
        log: key.name.clone(),
        tree_size: r.tree_size,
        entries: 1,
        opened: u64::from(opened),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_jcs(json: &str) -> String {
        let body: EvidenceBody<'_> = serde_json::from_str(json).unwrap();
        evidence_jcs_of_body(&body)
    }

    #[test]
    fn evidence_bodies_canonicalise_like_a_general_encoder() {
        for json in [
            r#"{"page_url":"https://x","ip":"203.0.113.7","user_agent":"UA"}"#,
            r#"{"b":"with \"escapes\" \u00e9","a":"x"}"#,
            r#"{"a":1,"b":"x","c":[true,null,{"z":1.5,"y":"s"}]}"#,
            r#"{}"#,
        ] {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(body_jcs(json), jcs(&value), "{json}");
        }
        assert!(matches!(
            serde_json::from_str::<EvidenceBody<'_>>(r#"{"a":"x"}"#).unwrap(),
            EvidenceBody::Strings(_)
        ));
        assert!(matches!(
            serde_json::from_str::<EvidenceBody<'_>>(r#"{"a":2}"#).unwrap(),
            EvidenceBody::Other(_)
        ));
        assert!(serde_json::from_str::<EvidenceBody<'_>>("[1]").is_err());
        assert!(serde_json::from_str::<EvidenceBody<'_>>(r#"{"a":"x","a":"y"}"#).is_err());
    }
}
