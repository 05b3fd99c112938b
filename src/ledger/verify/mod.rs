//! Offline verification (docs/ledger-format.md) of an export, a dossier or a
//! receipt, trusting only the verifier key given: the key name, checkpoint
//! origin and every entry's `log` agree; every opening opens its commitment;
//! numbers are E.164; the chain and the recomputed root (exports) or the
//! inclusion proofs (dossiers, receipts) lead to the signed checkpoint;
//! `recorded_at` never decreases; trusted checkpoints are consistent with it.
//!
//! Pure: it reads lines it is given. Entry lines are checked in parallel.

use crate::domain::time::Timestamp;
use crate::ledger::merkle::{self, Accumulator, Hash};
use crate::ledger::note::{open_checkpoint, Checkpoint, Verifier};
use serde::Deserialize;
use std::io::BufRead;

/// Where a verification failed.
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
    /// The root of the signed checkpoint it was verified against.
    pub root: Hash,
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

mod entry_check;
mod failure;
mod lines;
mod reader;

use entry_check::*;
pub use entry_check::{check_entry, EntryChecked};
use failure::{fail, failed};
pub use failure::{Failure, Place, VerifyError};
use lines::*;
pub use lines::{evidence_jcs_of_map, OpeningView};
use reader::*;
use std::collections::HashMap;

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
    /// A dossier is one person's group: its subjects, each with the seq of
    /// its first entry, and the links its `identity_linked` entries make.
    group: Group,
}

/// The subjects of a dossier and the links between them: they must form
/// one group (every subject joined to the first by the dossier's links).
/// A union-find over the subjects' commitments.
#[derive(Default)]
struct Group {
    /// Each subject with the seq of its first entry, in the order seen.
    first_seen: Vec<(Hash, u64)>,
    parent: HashMap<Hash, Hash>,
}

impl Group {
    fn root(&mut self, mut subject: Hash) -> Hash {
        while let Some(&up) = self.parent.get(&subject) {
            if up == subject {
                break;
            }
            let grand = self.parent.get(&up).copied().unwrap_or(up);
            self.parent.insert(subject, grand);
            subject = up;
        }
        subject
    }

    fn add(&mut self, subject: Hash, seq: u64) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.parent.entry(subject) {
            v.insert(subject);
            self.first_seen.push((subject, seq));
        }
    }

    fn note(&mut self, line: &CheckedLine) {
        self.add(line.subject, line.seq);
        if let Some(linked) = line.linked {
            self.add(linked, line.seq);
            let (a, b) = (self.root(line.subject), self.root(linked));
            self.parent.insert(a, b);
        }
    }

    /// The first entry of a subject the links do not join to the others:
    /// another person's entry spliced in.
    fn stranger(&mut self) -> Option<u64> {
        let (first, _) = *self.first_seen.first()?;
        let group = self.root(first);
        let seen = self.first_seen.clone();
        seen.into_iter()
            .find(|(s, _)| self.root(*s) != group)
            .map(|(_, seq)| seq)
    }
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
            group: Group::default(),
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
                self.group.note(&c);
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
    let fold = Fold::new(dossier, header.tree_size, trusted);
    let (mut fold, tail) = fold_entries(input, &header.log, fold)?;
    if let Some(seq) = fold.group.stranger() {
        return Err(failed(
            Place::Seq(seq),
            "another person's entry in a dossier (its subject is not linked to the others)",
        ));
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
        check_dossier_proofs(&fold, &cp, consistency.map(String::as_str), trusted)?;
    } else {
        check_export_root(&fold, &cp, header.tree_size, trusted)?;
    }
    Ok(Verified {
        kind: if dossier {
            DocumentKind::Dossier
        } else {
            DocumentKind::Export
        },
        log: header.log,
        tree_size: header.tree_size,
        root: cp.root,
        entries: fold.entries,
        opened: fold.opened,
    })
}

/// Reads the entry lines in batches: workers check one batch while this
/// thread reads the next and folds the previous one in order. Returns the
/// fold and the lines after the entries.
fn fold_entries(
    input: impl BufRead,
    log: &str,
    mut fold: Fold,
) -> Result<(Fold, Vec<String>), VerifyError> {
    let mut reader = BatchReader::new(input, 1);
    let mut current = reader.next_batch()?;
    let mut pending: Option<Vec<Result<CheckedLine, Failure>>> = None;
    while !current.is_empty() || pending.is_some() {
        let (results, next, folded) = std::thread::scope(|scope| {
            let checking =
                (!current.is_empty()).then(|| scope.spawn(|| check_batch(&current, log)));
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
    Ok((fold, reader.tail))
}

/// A dossier: every entry's inclusion proof leads to the checkpoint, and
/// each trusted checkpoint is consistent with it by the given proof.
fn check_dossier_proofs(
    fold: &Fold,
    cp: &Checkpoint,
    consistency: Option<&str>,
    trusted: &[Trusted],
) -> Result<(), VerifyError> {
    for (seq, leaf, proof) in &fold.proofs {
        if !merkle::verify_inclusion(leaf, *seq, cp.size, proof, &cp.root) {
            return Err(failed(
                Place::Seq(*seq),
                "inclusion proof does not lead to the checkpoint's root",
            ));
        }
    }
    let consistency = consistency
        .map(serde_json::from_str::<ConsistencyLine>)
        .transpose()
        .map_err(|e| Failure {
            place: Place::Checkpoint,
            what: format!("malformed consistency line: {e}"),
        })?;
    for t in trusted {
        check_trusted_by_proof(t, cp, consistency.as_ref().map(|c| &c.consistency))?;
    }
    Ok(())
}

/// An export: the recomputed root is the checkpoint's, and each trusted
/// checkpoint's root is the root recomputed at its size.
fn check_export_root(
    fold: &Fold,
    cp: &Checkpoint,
    tree_size: u64,
    trusted: &[Trusted],
) -> Result<(), VerifyError> {
    if fold.acc.size() != tree_size {
        return Err(failed(
            Place::Checkpoint,
            format!(
                "the export holds {} entries, the checkpoint {}",
                fold.acc.size(),
                tree_size
            ),
        ));
    }
    if fold.acc.root() != cp.root {
        return Err(failed(
            Place::Checkpoint,
            "the recomputed root is not the checkpoint's root",
        ));
    }
    for t in trusted {
        if t.size > tree_size {
            return Err(failed(
                Place::Checkpoint,
                format!(
                    "older than the trusted checkpoint of size {}: the log shrank",
                    t.size
                ),
            ));
        }
        let root = fold
            .roots_at
            .iter()
            .find(|(s, _)| *s == t.size)
            .map(|(_, r)| *r);
        if root != Some(t.root) {
            return Err(failed(
                Place::Checkpoint,
                format!(
                    "not consistent with the trusted checkpoint of size {}: history was rewritten",
                    t.size
                ),
            ));
        }
    }
    Ok(())
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
        // `verify --from` fetches one from the log online.
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
        root: cp.root,
        entries: 1,
        opened: u64::from(opened),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::jcs::jcs;

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
