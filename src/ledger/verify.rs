//! Offline verification (SPEC section 6) of an export, a dossier or a
//! receipt, trusting only the verifier key given: the key name, checkpoint
//! origin and every entry's `log` agree; every opening opens its commitment;
//! numbers are E.164; the chain and the recomputed root (exports) or the
//! inclusion proofs (dossiers, receipts) lead to the signed checkpoint;
//! `recorded_at` never decreases; trusted checkpoints are consistent with it.
//!
//! Pure: it reads lines it is given. Entry lines are checked in parallel.

use super::entry::{
    evidence_commitment, jcs, jcs_string_map, sha256_hex, subject_commitment, Entry, EntryType,
    Openings,
};
use super::merkle::{self, Accumulator, Hash};
use super::note::{open_checkpoint, Checkpoint, Verifier};
use crate::domain::time::Timestamp;
use serde::Deserialize;
use std::fmt;
use std::io::BufRead;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLine {
    entry: Entry,
    leaf_hash: String,
    openings: Option<Openings>,
    #[serde(default)]
    inclusion_proof: Option<Vec<String>>,
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
struct Receipt {
    format: String,
    entry: Entry,
    leaf_hash: String,
    tree_size: u64,
    inclusion_proof: Vec<String>,
    checkpoint: String,
    verifier_key: String,
    openings: Openings,
}

fn hash_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

fn proof_hashes(place: &Place, proof: &[String]) -> Result<Vec<Hash>, Failure> {
    proof
        .iter()
        .map(|h| {
            hash_hex(h).ok_or_else(|| Failure {
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

fn sorted_subset(list: &[String], allowed: &[&str]) -> bool {
    !list.is_empty()
        && list.windows(2).all(|w| w[0] < w[1])
        && list.iter().all(|x| allowed.contains(&x.as_str()))
}

/// The fields each type carries (SPEC section 5), and canonical values.
fn check_shape(e: &Entry) -> Result<(), String> {
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
    if e.seq >= 1 << 53 {
        return Err("seq is not below 2^53".into());
    }
    for (name, value) in [
        ("prev", Some(&e.prev)),
        ("subject", Some(&e.subject)),
        ("evidence_sha256", e.evidence_sha256.as_ref()),
        ("consent_text_sha256", e.consent_text_sha256.as_ref()),
    ] {
        if value.is_some_and(|v| hash_hex(v).is_none()) {
            return Err(format!("{name} is not 64 lowercase hex"));
        }
    }
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
        if !allowed.contains(&c.as_str()) {
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

/// Checks each opening against its commitment.
fn check_openings(e: &Entry, o: &Openings) -> Result<bool, String> {
    if o.erased {
        if o.subject.is_some() || o.evidence.is_some() || o.consent_text.is_some() {
            return Err("an erased entry carries openings".into());
        }
        return Ok(false);
    }
    let subject = o.subject.as_ref().ok_or("subject opening missing")?;
    if !is_e164(&subject.e164) {
        return Err("the opened number is not E.164".into());
    }
    if hash_hex(&subject.salt).is_none() {
        return Err("the subject salt is not 64 lowercase hex".into());
    }
    if subject_commitment(&subject.salt, &subject.e164) != e.subject {
        return Err("subject opening does not match the subject commitment".into());
    }
    match (&e.evidence_sha256, &o.evidence) {
        (Some(commitment), Some(evidence)) => {
            let all_strings = evidence.body.values().all(|v| v.is_string());
            let canonical = if all_strings {
                jcs_string_map(
                    evidence
                        .body
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
                )
            } else {
                jcs(&evidence.body)
            };
            if &evidence_commitment(&evidence.salt, &canonical) != commitment {
                return Err("evidence opening does not match evidence_sha256".into());
            }
        }
        (Some(_), None) => return Err("evidence opening missing".into()),
        (None, Some(_)) => return Err("an evidence opening for an entry without evidence".into()),
        (None, None) => {}
    }
    match (&e.consent_text_sha256, &o.consent_text) {
        (Some(hash), Some(text)) => {
            if &sha256_hex(text.as_bytes()) != hash {
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
    leaf: Hash,
    prev: Hash,
    recorded_at: Timestamp,
    opened: bool,
    proof: Option<Vec<Hash>>,
}

/// Checks one entry on its own: its log, its shape, its leaf hash and its
/// openings (when given). Returns the leaf hash and whether it was opened.
pub fn check_entry(
    entry: &Entry,
    leaf_hash: &str,
    openings: Option<&Openings>,
    log: &str,
) -> Result<(Hash, bool), String> {
    if entry.log != log {
        return Err(format!("log {:?} is not the key's log {log:?}", entry.log));
    }
    check_shape(entry)?;
    let leaf = merkle::hash_leaf(entry.canonical_json().as_bytes());
    if hash_hex(leaf_hash) != Some(leaf) {
        return Err("leaf_hash does not match the entry".into());
    }
    let opened = match openings {
        Some(o) => check_openings(entry, o)?,
        None => false,
    };
    Ok((leaf, opened))
}

fn check_line(line_no: u64, line: &str, log: &str) -> Result<CheckedLine, Failure> {
    let parsed: EntryLine = serde_json::from_str(line).map_err(|e| Failure {
        place: Place::Line(line_no),
        what: format!("not an entry line: {e}"),
    })?;
    let seq = parsed.entry.seq;
    let place = Place::Seq(seq);
    let (leaf, opened) = check_entry(
        &parsed.entry,
        &parsed.leaf_hash,
        parsed.openings.as_ref(),
        log,
    )
    .map_err(|what| Failure {
        place: place.clone(),
        what,
    })?;
    let proof = parsed
        .inclusion_proof
        .as_deref()
        .map(|p| proof_hashes(&place, p))
        .transpose()?;
    Ok(CheckedLine {
        seq,
        leaf,
        prev: hash_hex(&parsed.entry.prev).unwrap_or([0; 32]),
        recorded_at: parsed.entry.recorded_at,
        opened,
        proof,
    })
}

/// Checks a batch of lines on all cores, keeping their order.
fn check_batch(batch: &[(u64, String)], log: &str) -> Vec<Result<CheckedLine, Failure>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch.len().max(1));
    if workers <= 1 || batch.len() < 64 {
        return batch.iter().map(|(n, l)| check_line(*n, l, log)).collect();
    }
    let chunk = batch.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(n, l)| check_line(*n, l, log))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification worker panicked"))
            .collect()
    })
}

/// Lines per parallel batch.
const BATCH: usize = 16_384;

/// Verifies an export, dossier or receipt read from `input`.
pub fn verify(
    input: impl BufRead,
    key: &Verifier,
    trusted: &[Trusted],
) -> Result<Verified, VerifyError> {
    let mut lines = input.lines();
    let first = match lines.next() {
        Some(Ok(line)) => line,
        Some(Err(e)) => return Err(VerifyError::Unreadable(e.to_string())),
        None => return Err(VerifyError::Unreadable("the file is empty".into())),
    };
    if let Ok(header) = serde_json::from_str::<serde_json::Value>(&first) {
        if header.get("format").and_then(|f| f.as_str()) == Some("consent-ledger-export/v1") {
            let header: Header = serde_json::from_value(header).map_err(|e| {
                VerifyError::Failed(Failure {
                    place: Place::Header,
                    what: format!("malformed header: {e}"),
                })
            })?;
            return verify_lines(header, lines, key, trusted);
        }
    }
    // Not NDJSON with an export header: the whole file is one JSON document.
    let mut text = first;
    for line in lines {
        let line = line.map_err(|e| VerifyError::Unreadable(e.to_string()))?;
        text.push('\n');
        text.push_str(&line);
    }
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| VerifyError::Unreadable(format!("neither an export nor a receipt: {e}")))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some("consent-ledger-receipt/v1") => {
            let receipt: Receipt = serde_json::from_value(value).map_err(|e| {
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

fn verify_lines(
    header: Header,
    lines: impl Iterator<Item = std::io::Result<String>>,
    key: &Verifier,
    trusted: &[Trusted],
) -> Result<Verified, VerifyError> {
    if header.format != "consent-ledger-export/v1" {
        return Err(failed(Place::Header, "unknown export format"));
    }
    check_header_key(&header.log, &header.verifier_key, key)?;
    let dossier = header.filtered;
    let log = header.log.clone();
    let mut acc = Accumulator::new();
    let mut roots_at: Vec<(u64, Hash)> = Vec::new();
    let mut trusted_sizes: Vec<u64> = trusted.iter().map(|t| t.size).collect();
    trusted_sizes.sort_unstable();
    trusted_sizes.dedup();
    let mut next_trusted = trusted_sizes.iter().peekable();
    if let Some(&&0) = next_trusted.peek() {
        roots_at.push((0, acc.root()));
        next_trusted.next();
    }
    let (mut last_seq, mut last_leaf, mut last_at): (Option<u64>, Hash, Option<Timestamp>) =
        (None, [0; 32], None);
    let (mut entries, mut opened) = (0u64, 0u64);
    let mut proofs: Vec<(u64, Hash, Vec<Hash>)> = Vec::new();
    let mut tail: Vec<String> = Vec::new();
    let mut batch: Vec<(u64, String)> = Vec::with_capacity(BATCH);
    let mut line_no = 1u64;
    let mut lines = lines.peekable();
    loop {
        // Fill a batch with entry lines; stop at the first non-entry line.
        batch.clear();
        while batch.len() < BATCH {
            match lines.next() {
                None => break,
                Some(Err(e)) => return Err(VerifyError::Unreadable(e.to_string())),
                Some(Ok(line)) => {
                    line_no += 1;
                    if line.starts_with("{\"entry\"")
                        || (!line.starts_with("{\"checkpoint\"")
                            && !line.starts_with("{\"consistency\"")
                            && line.contains("\"entry\""))
                    {
                        batch.push((line_no, line));
                    } else {
                        tail.push(line);
                        tail.extend(lines.by_ref().map_while(Result::ok));
                        break;
                    }
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        for checked in check_batch(&batch, &log) {
            let c = checked?;
            let place = Place::Seq(c.seq);
            match (dossier, last_seq) {
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
            if !dossier {
                let expected_prev = if c.seq == 0 { [0; 32] } else { last_leaf };
                if c.prev != expected_prev {
                    return Err(failed(place, "prev is not the previous entry's leaf hash"));
                }
            }
            if last_at.is_some_and(|t| c.recorded_at < t) {
                return Err(failed(place, "recorded_at decreases"));
            }
            if c.seq >= header.tree_size {
                return Err(failed(
                    place,
                    format!("beyond the header's tree_size {}", header.tree_size),
                ));
            }
            if dossier {
                let proof = c.proof.clone().ok_or_else(|| Failure {
                    place: place.clone(),
                    what: "inclusion_proof missing".into(),
                })?;
                proofs.push((c.seq, c.leaf, proof));
            } else {
                if c.proof.is_some() {
                    return Err(failed(place, "an export line carries an inclusion proof"));
                }
                acc.push(c.leaf);
                while let Some(&&t) = next_trusted.peek() {
                    if t != acc.size() {
                        break;
                    }
                    roots_at.push((t, acc.root()));
                    next_trusted.next();
                }
            }
            last_seq = Some(c.seq);
            last_leaf = c.leaf;
            last_at = Some(c.recorded_at);
            entries += 1;
            opened += u64::from(c.opened);
        }
    }
    // The tail: an optional consistency line (dossiers), then the checkpoint.
    let tail: Vec<String> = tail.into_iter().filter(|l| !l.trim().is_empty()).collect();
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

fn verify_receipt(r: Receipt, key: &Verifier, trusted: &[Trusted]) -> Result<Verified, Failure> {
    if r.format != "consent-ledger-receipt/v1" {
        return fail(Place::Header, "unknown receipt format");
    }
    check_header_key(&r.entry.log, &r.verifier_key, key)?;
    let place = Place::Seq(r.entry.seq);
    let (leaf, opened) = check_entry(&r.entry, &r.leaf_hash, Some(&r.openings), &key.name)
        .map_err(|what| Failure {
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
