//! The offline verifier on generated files: large exports across batch
//! boundaries, line endings, tampering on the fast path, and trusted
//! checkpoints that are validly signed but inconsistent.

use consent_ledger::domain::time::Timestamp;
use consent_ledger::ledger::commitment::{evidence_commitment, subject_commitment};
use consent_ledger::ledger::entry::{Entry, EntryType, EvidenceOpening, Openings, SubjectOpening};
use consent_ledger::ledger::jcs::jcs_string_map;
use consent_ledger::ledger::merkle::{self, Accumulator};
use consent_ledger::ledger::note::{self, Verifier};
use consent_ledger::ledger::verify::{trusted_checkpoint, verify, VerifyError};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "files.example/t";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn verifier() -> Verifier {
    Verifier::parse(&note::verifier_key(
        ORIGIN,
        &key().verifying_key().to_bytes(),
    ))
    .unwrap()
}

/// An export of `n` API opt-outs (the reason varies with `flavour`), and the
/// signed checkpoint at every size listed in `keep`.
fn export(n: u64, flavour: &str, keep: &[u64]) -> (String, Vec<String>) {
    let vkey = note::verifier_key(ORIGIN, &key().verifying_key().to_bytes());
    let mut out = format!("{{\"format\":\"consent-ledger-export/v1\",\"log\":\"{ORIGIN}\",\"tree_size\":{n},\"verifier_key\":\"{vkey}\"}}\n");
    let mut acc = Accumulator::new();
    let mut kept = Vec::new();
    let mut prev = [0u8; 32];
    for seq in 0..n {
        if keep.contains(&seq) {
            kept.push(note::sign_note(
                &note::checkpoint_body(ORIGIN, seq, &acc.root()),
                ORIGIN,
                &key(),
            ));
        }
        let e164 = format!("+4915100{:06}", seq % 1_000_000);
        let salt = format!("{:064x}", seq + 1);
        let ev_salt = format!("{:064x}", seq + 7);
        let reason = format!("{flavour} {seq}");
        let body = [("reason", reason.as_str())];
        let at = Timestamp::parse("2026-01-01T00:00:00Z")
            .unwrap()
            .plus_millis(seq as i64);
        let mut entry = Entry::new(
            EntryType::OptOut,
            ORIGIN,
            seq,
            &hex::encode(prev),
            at,
            &subject_commitment(&salt, &e164),
            "key_000000000000",
        );
        entry.channel = Some("api".into());
        entry.captured_at = Some(at);
        entry.purposes = Some(vec!["marketing".into()]);
        entry.message_channels = Some(vec!["sms".into(), "whatsapp".into()]);
        entry.evidence_sha256 = Some(evidence_commitment(&ev_salt, &jcs_string_map(body)));
        let canonical = entry.canonical_json();
        let leaf = merkle::hash_leaf(canonical.as_bytes());
        let openings = Openings {
            subject: Some(SubjectOpening::number(e164, salt)),
            evidence: Some(EvidenceOpening {
                salt: ev_salt,
                body: [("reason".to_string(), serde_json::Value::String(reason))]
                    .into_iter()
                    .collect(),
            }),
            consent_text: None,
            erased: false,
            linked: None,
        };
        out.push_str(&format!(
            "{{\"entry\":{canonical},\"leaf_hash\":\"{}\",\"openings\":{}}}\n",
            hex::encode(leaf),
            serde_json::to_string(&openings).unwrap()
        ));
        acc.push(leaf);
        prev = leaf;
    }
    if keep.contains(&n) {
        kept.push(note::sign_note(
            &note::checkpoint_body(ORIGIN, n, &acc.root()),
            ORIGIN,
            &key(),
        ));
    }
    let checkpoint = note::sign_note(
        &note::checkpoint_body(ORIGIN, n, &acc.root()),
        ORIGIN,
        &key(),
    );
    out.push_str(&serde_json::to_string(&serde_json::json!({ "checkpoint": checkpoint })).unwrap());
    out.push('\n');
    (out, kept)
}

fn failure(text: &str, trusted: &[String]) -> String {
    let trusted: Vec<_> = trusted
        .iter()
        .map(|t| trusted_checkpoint(t, &verifier()).unwrap())
        .collect();
    match verify(text.as_bytes(), &verifier(), &trusted) {
        Err(VerifyError::Failed(f)) => f.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_large_export_verifies_across_batches_and_line_endings() {
    let (text, _) = export(17_000, "asked", &[]);
    let verified = verify(text.as_bytes(), &verifier(), &[]).unwrap();
    assert_eq!(
        (verified.entries, verified.opened, verified.tree_size),
        (17_000, 17_000, 17_000)
    );
    // Windows line endings, and no newline after the last line.
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(
        verify(crlf.as_bytes(), &verifier(), &[]).unwrap().entries,
        17_000
    );
    let trimmed = text.trim_end_matches('\n');
    assert_eq!(
        verify(trimmed.as_bytes(), &verifier(), &[])
            .unwrap()
            .entries,
        17_000
    );
    // A change in the second batch, on the fast path, is named.
    let altered = text.replacen(
        "\"reason\":\"asked 16500\"",
        "\"reason\":\"asked 16501\"",
        1,
    );
    assert_ne!(altered, text);
    assert_eq!(
        failure(&altered, &[]),
        "seq 16500: evidence opening does not match evidence_sha256"
    );
    let entry_altered = text.replacen(
        "\"recorded_at\":\"2026-01-01T00:00:16.400Z\"",
        "\"recorded_at\":\"2026-01-01T00:00:16.399Z\"",
        1,
    );
    assert_ne!(entry_altered, text);
    assert_eq!(
        failure(&entry_altered, &[]),
        "seq 16400: leaf_hash does not match the entry"
    );
    // A line dropped in the middle.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(9_001);
    assert_eq!(
        failure(&(lines.join("\n") + "\n"), &[]),
        "seq 9001: expected seq 9000 (an entry is missing or out of order)"
    );
}

#[test]
fn a_validly_signed_but_inconsistent_kept_checkpoint_is_caught() {
    let (good, kept) = export(12, "asked", &[3, 12]);
    assert!(verify(
        good.as_bytes(),
        &verifier(),
        &[trusted_checkpoint(&kept[0], &verifier()).unwrap()]
    )
    .is_ok());
    // The same key signed a different history of the first three entries.
    let (_, other) = export(5, "rewritten", &[3]);
    assert_eq!(
        failure(&good, &other),
        "checkpoint: not consistent with the trusted checkpoint of size 3: history was rewritten"
    );
    // A kept checkpoint larger than the export: the log shrank.
    let (small, _) = export(8, "asked", &[]);
    assert_eq!(
        failure(&small, &kept[1..]),
        "checkpoint: older than the trusted checkpoint of size 12: the log shrank"
    );
}

#[test]
fn hostile_input_is_refused_not_panicked_on() {
    let (text, _) = export(3, "asked", &[]);
    for bad in [
        text.replacen("{\"entry\":", "{\"entry\":{\"entry\":", 1),
        text.replacen("\"openings\":{", "\"openings\":{\"openings\":{}, ", 1),
        text.replacen(
            "\"reason\":\"asked 1\"",
            "\"reason\":\"asked 1\",\"reason\":\"x\"",
            1,
        ),
        text.replacen("\"seq\":2", "\"seq\":9007199254740993", 1),
        text.lines().take(3).collect::<Vec<_>>().join("\n"),
        text.replacen("\n{\"entry\"", "\n\n{\"entry\"", 1),
    ] {
        assert!(verify(bad.as_bytes(), &verifier(), &[]).is_err(), "{bad}");
    }
}
