//! Known-answer tests against `tests/vectors/` (copied from the project's
//! shared vectors, computed outside our code).

use consent_ledger::keys::MasterKey;
use consent_ledger::ledger::commitment::{evidence_commitment, subject_commitment};
use consent_ledger::ledger::entry::{Entry, Openings};
use consent_ledger::ledger::hash::sha256_hex;
use consent_ledger::ledger::jcs::jcs;
use consent_ledger::ledger::note;
use serde_json::Value;

fn ledger_vectors() -> Value {
    serde_json::from_str(include_str!("../vectors/ledger-v1.json")).unwrap()
}

#[test]
fn every_entry_serialises_to_its_canonical_json_and_leaf_hash() {
    let v = ledger_vectors();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 8);
    let mut prev = "0".repeat(64);
    for (i, item) in entries.iter().enumerate() {
        let entry: Entry = serde_json::from_value(item["entry"].clone()).unwrap();
        assert_eq!(entry.seq, i as u64);
        assert_eq!(
            entry.canonical_json(),
            item["jcs"].as_str().unwrap(),
            "seq {i}"
        );
        assert_eq!(
            entry.leaf_hash_hex(),
            item["leaf_hash"].as_str().unwrap(),
            "seq {i}"
        );
        assert_eq!(entry.prev, prev, "seq {i} chains to seq {}", i as i64 - 1);
        prev = entry.leaf_hash_hex();
        // Round trip: parsing the canonical JSON gives the same entry.
        let reparsed: Entry = serde_json::from_str(item["jcs"].as_str().unwrap()).unwrap();
        assert_eq!(reparsed, entry);
    }
}

#[test]
fn commitments_open_with_the_vector_openings() {
    let v = ledger_vectors();
    let mut opened = 0;
    for item in v["entries"].as_array().unwrap() {
        let entry = &item["entry"];
        let openings = &item["openings"];
        if openings["erased"] == true {
            assert!(openings["subject"].is_null() && openings["evidence"].is_null());
            continue;
        }
        let subject = &openings["subject"];
        assert_eq!(
            subject_commitment(
                subject["salt"].as_str().unwrap(),
                subject["e164"].as_str().unwrap()
            ),
            entry["subject"].as_str().unwrap()
        );
        let evidence = &openings["evidence"];
        assert_eq!(
            evidence_commitment(evidence["salt"].as_str().unwrap(), &jcs(&evidence["body"])),
            entry["evidence_sha256"].as_str().unwrap()
        );
        if let Some(text) = openings["consent_text"].as_str() {
            assert_eq!(
                sha256_hex(text.as_bytes()),
                entry["consent_text_sha256"].as_str().unwrap()
            );
        }
        opened += 1;
    }
    assert_eq!(opened, 5);
}

#[test]
fn master_key_derivations_and_the_tenant_verifier_key() {
    let v = ledger_vectors();
    let master: [u8; 32] = hex::decode(v["master_key_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let master = MasterKey::from_bytes(master);
    let expected_suppress = v["derived"]
        ["suppress key for tenant makro (consent-ledger/suppress/v1\\nmakro)"]
        .as_str()
        .unwrap();
    assert_eq!(hex::encode(master.suppress_key("makro")), expected_suppress);
    // The KEK is checked in keys.rs; here, that it seals and opens.
    let sealed = master.kek().seal(b"seed", b"aad");
    assert_eq!(master.kek().open(&sealed, b"aad").unwrap(), b"seed");
    let seed: [u8; 32] = hex::decode(v["tenant_signing_seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(
        note::verifier_key(
            v["origin"].as_str().unwrap(),
            &key.verifying_key().to_bytes()
        ),
        v["verifier_key"].as_str().unwrap()
    );
}

#[test]
fn checkpoints_are_signed_byte_for_byte() {
    use base64::Engine;
    let v = ledger_vectors();
    let origin = v["origin"].as_str().unwrap();
    let seed: [u8; 32] = hex::decode(v["tenant_signing_seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let empty_root: [u8; 32] = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new()).into();
    let body = note::checkpoint_body(origin, 0, &empty_root);
    assert_eq!(
        note::sign_note(&body, origin, &key),
        v["checkpoint_size_0"].as_str().unwrap()
    );
    let root: [u8; 32] = hex::decode(v["root_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let body = note::checkpoint_body(origin, 8, &root);
    assert_eq!(
        note::sign_note(&body, origin, &key),
        v["checkpoint_size_8"].as_str().unwrap()
    );
    assert!(body.contains(&base64::engine::general_purpose::STANDARD.encode(root)));
}

#[test]
fn the_go_sumdb_note_signing_example_is_reproduced() {
    let v: Value = serde_json::from_str(include_str!("../vectors/signed-note.json")).unwrap();
    let sign = &v["sign"];
    let seed: [u8; 32] = hex::decode(sign["seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(
        hex::encode(key.verifying_key().to_bytes()),
        sign["public_key_hex"].as_str().unwrap()
    );
    assert_eq!(
        note::verifier_key("PeterNeumann", &key.verifying_key().to_bytes()),
        sign["verifier_key"].as_str().unwrap()
    );
    let text = sign["text"].as_str().unwrap();
    assert_eq!(
        note::signature_line(text, "PeterNeumann", &key),
        sign["signature_line"].as_str().unwrap()
    );
}

#[test]
fn the_c2sp_example_and_a_real_sumdb_checkpoint_verify() {
    use consent_ledger::ledger::note::{open_checkpoint, SignedNote, Verifier};
    let v: Value = serde_json::from_str(include_str!("../vectors/signed-note.json")).unwrap();
    let spec = &v["spec_example"];
    let key = Verifier::parse(spec["verifier_key"].as_str().unwrap()).unwrap();
    let note = format!(
        "{}\n{}",
        spec["text"].as_str().unwrap(),
        spec["signature_line"].as_str().unwrap()
    );
    SignedNote::parse(&note).unwrap().verify(&key).unwrap();
    let tampered = note.replace("example message", "exemplary message");
    assert!(SignedNote::parse(&tampered).unwrap().verify(&key).is_err());
    let real = &v["real_checkpoint"];
    let key = Verifier::parse(real["verifier_key"].as_str().unwrap()).unwrap();
    let cp = open_checkpoint(real["note"].as_str().unwrap(), &key).unwrap();
    assert_eq!(
        (cp.origin.as_str(), cp.size),
        ("go.sum database tree", 6476701)
    );
    // The Go example's own note verifies with its verifier key.
    let sign = &v["sign"];
    let key = Verifier::parse(sign["verifier_key"].as_str().unwrap()).unwrap();
    let note = format!(
        "{}\n{}",
        sign["text"].as_str().unwrap(),
        sign["signature_line"].as_str().unwrap()
    );
    SignedNote::parse(&note).unwrap().verify(&key).unwrap();
}

#[test]
fn the_ledger_checkpoints_and_proofs_of_ledger_v1() {
    use consent_ledger::ledger::merkle::{self, MemoryTree};
    use consent_ledger::ledger::note::{open_checkpoint, Verifier};
    let v = ledger_vectors();
    let key = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let mut tree = MemoryTree::new();
    for item in v["entries"].as_array().unwrap() {
        tree.push(
            hex::decode(item["leaf_hash"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        );
    }
    let hexes = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect()
    };
    for (size, name) in [
        (0u64, "checkpoint_size_0"),
        (5, "checkpoint_size_5"),
        (8, "checkpoint_size_8"),
    ] {
        let cp = open_checkpoint(v[name].as_str().unwrap(), &key).unwrap();
        assert_eq!(cp.size, size);
        assert_eq!(cp.root, merkle::root(&mut tree, size).unwrap(), "{name}");
    }
    assert_eq!(
        hex::encode(merkle::root(&mut tree, 8).unwrap()),
        v["root_hex"].as_str().unwrap()
    );
    let consistency: Vec<String> = merkle::consistency_proof(&mut tree, 5, 8)
        .unwrap()
        .into_iter()
        .map(hex::encode)
        .collect();
    assert_eq!(consistency, hexes(&v["consistency_5_to_8"]));
    let inclusion: Vec<String> = merkle::inclusion_proof(&mut tree, 1, 8)
        .unwrap()
        .into_iter()
        .map(hex::encode)
        .collect();
    assert_eq!(inclusion, hexes(&v["inclusion_seq_1_size_8"]));
}

#[test]
fn the_export_dossier_and_receipt_verify_and_every_bad_file_fails() {
    use consent_ledger::ledger::note::Verifier;
    use consent_ledger::ledger::verify::{trusted_checkpoint, verify, DocumentKind, VerifyError};
    let v = ledger_vectors();
    let key = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let good = [
        (
            include_str!("../vectors/export-v1.ndjson"),
            DocumentKind::Export,
            8,
        ),
        (
            include_str!("../vectors/dossier-v1.ndjson"),
            DocumentKind::Dossier,
            5,
        ),
        (
            include_str!("../vectors/receipt-v1.json"),
            DocumentKind::Receipt,
            1,
        ),
    ];
    for (text, kind, entries) in good {
        let verified =
            verify(text.as_bytes(), &key, &[]).unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
        assert_eq!(
            (verified.kind, verified.entries, verified.tree_size),
            (kind, entries, 8)
        );
    }
    // The export against the kept checkpoints of sizes 0, 5 and 8.
    let kept: Vec<_> = [
        "checkpoint_size_0",
        "checkpoint_size_5",
        "checkpoint_size_8",
    ]
    .iter()
    .map(|n| trusted_checkpoint(v[*n].as_str().unwrap(), &key).unwrap())
    .collect();
    verify(
        include_str!("../vectors/export-v1.ndjson").as_bytes(),
        &key,
        &kept,
    )
    .unwrap();
    let bad = [
        (
            include_str!("../vectors/bad/export-consent-text-changed.ndjson"),
            "seq 1: consent text",
        ),
        (
            include_str!("../vectors/bad/export-entry-altered.ndjson"),
            "seq 0: leaf_hash",
        ),
        (
            include_str!("../vectors/bad/export-entry-removed.ndjson"),
            "seq 4: expected seq 3",
        ),
        (
            include_str!("../vectors/bad/export-signed-by-another-key.ndjson"),
            "checkpoint: ",
        ),
        (
            include_str!("../vectors/bad/receipt-proof-altered.json"),
            "seq 1: inclusion proof",
        ),
    ];
    for (text, why) in bad {
        match verify(text.as_bytes(), &key, &[]) {
            Err(VerifyError::Failed(failure)) => assert!(
                failure.to_string().starts_with(why),
                "{failure} (expected {why})"
            ),
            other => panic!("expected a failure starting {why:?}, got {other:?}"),
        }
    }
}

#[test]
fn verify_exits_0_for_good_files_and_1_for_every_bad_file() {
    let v = ledger_vectors();
    let key = v["verifier_key"].as_str().unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    for good in ["export-v1.ndjson", "dossier-v1.ndjson", "receipt-v1.json"] {
        let (code, out, err) =
            crate::helpers::run_cli(&["verify", &format!("{dir}/{good}"), "--key", key], None);
        assert_eq!(code, 0, "{good}: {out}{err}");
    }
    let bad: Vec<_> = std::fs::read_dir(format!("{dir}/bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bad.len(), 6);
    let identities = identity_vectors();
    let identities_key = identities["verifier_key"].as_str().unwrap();
    let (code, out, err) = crate::helpers::run_cli(
        &[
            "verify",
            &format!("{dir}/export-identities-v1.ndjson"),
            "--key",
            identities_key,
        ],
        None,
    );
    assert_eq!(code, 0, "export-identities-v1.ndjson: {out}{err}");
    for path in bad {
        let key = if path.ends_with("export-identity-link-forged.ndjson") {
            identities_key
        } else {
            key
        };
        let (code, out, err) =
            crate::helpers::run_cli(&["verify", path.to_str().unwrap(), "--key", key], None);
        assert_eq!(code, 1, "{}: {out}{err}", path.display());
        assert!(
            out.starts_with("seq ") || out.starts_with("checkpoint: "),
            "{out}"
        );
    }
}

fn identity_vectors() -> Value {
    serde_json::from_str(include_str!("../vectors/identities-v1.json")).unwrap()
}

/// docs/identities.md and docs/ledger-format.md: subjects over a number or a user id, and
/// `identity_linked` entries whose `linked` opening opens the other
/// identity's commitment.
#[test]
fn identity_entries_serialise_and_open_as_the_vectors_say() {
    let v = identity_vectors();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    let mut prev = "0".repeat(64);
    let mut kinds = Vec::new();
    for (i, item) in entries.iter().enumerate() {
        let entry: Entry = serde_json::from_value(item["entry"].clone()).unwrap();
        assert_eq!(
            entry.canonical_json(),
            item["jcs"].as_str().unwrap(),
            "seq {i}"
        );
        assert_eq!(
            entry.leaf_hash_hex(),
            item["leaf_hash"].as_str().unwrap(),
            "seq {i}"
        );
        assert_eq!(entry.prev, prev, "seq {i}");
        prev = entry.leaf_hash_hex();
        let reparsed: Entry = serde_json::from_str(item["jcs"].as_str().unwrap()).unwrap();
        assert_eq!(reparsed, entry);
        kinds.push(entry.kind.as_str());
        // The openings as the API types read them, and back, unchanged.
        let openings: Openings = serde_json::from_value(item["openings"].clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&openings).unwrap(),
            item["openings"],
            "seq {i}"
        );
        let subject = openings.subject.as_ref().unwrap();
        assert_eq!(
            subject_commitment(&subject.salt, subject.identity().unwrap()),
            entry.subject,
            "seq {i}"
        );
        match (&entry.linked, &openings.linked) {
            (Some(linked), Some(Some(opening))) => {
                assert_eq!(
                    &subject_commitment(&opening.salt, opening.identity().unwrap()),
                    linked
                );
                assert_ne!(linked, &entry.subject);
            }
            (None, None) => {}
            other => panic!("seq {i}: linked and its opening go together: {other:?}"),
        }
        let evidence = openings.evidence.as_ref().unwrap();
        assert_eq!(
            evidence_commitment(&evidence.salt, &jcs(&Value::Object(evidence.body.clone()))),
            entry.evidence_sha256.clone().unwrap(),
            "seq {i}"
        );
    }
    assert_eq!(
        kinds,
        [
            "opt_in",
            "opt_out",
            "opt_in",
            "identity_linked",
            "identity_linked",
            "opt_out"
        ]
    );
}

#[test]
fn the_identities_export_verifies_and_a_forged_link_fails() {
    use consent_ledger::ledger::note::Verifier;
    use consent_ledger::ledger::verify::{verify, DocumentKind, VerifyError};
    let v = identity_vectors();
    let key = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let verified = verify(
        include_str!("../vectors/export-identities-v1.ndjson").as_bytes(),
        &key,
        &[],
    )
    .unwrap();
    assert_eq!(
        (
            verified.kind,
            verified.entries,
            verified.opened,
            verified.tree_size
        ),
        (DocumentKind::Export, 6, 6, 6)
    );
    assert_eq!(hex::encode(verified.root), v["root_hex"].as_str().unwrap());
    match verify(
        include_str!("../vectors/bad/export-identity-link-forged.ndjson").as_bytes(),
        &key,
        &[],
    ) {
        Err(VerifyError::Failed(failure)) => assert_eq!(
            failure.to_string(),
            "seq 3: the linked opening does not match its commitment"
        ),
        other => panic!("the forged link must fail, got {other:?}"),
    }
    // Linked openings belong to identity_linked entries only, and a link
    // entry must carry its `linked` opening.
    let text = include_str!("../vectors/export-identities-v1.ndjson");
    let lines: Vec<&str> = text.lines().collect();
    let mut stray: Value = serde_json::from_str(lines[1]).unwrap();
    stray["openings"]["linked"] = Value::Null;
    let mut missing: Value = serde_json::from_str(lines[4]).unwrap();
    missing["openings"]
        .as_object_mut()
        .unwrap()
        .remove("linked");
    for (n, changed, why) in [
        (1, stray, "seq 0: openings carry `linked`"),
        (4, missing, "seq 3: the linked opening is missing"),
    ] {
        let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        edited[n] = changed.to_string();
        match verify(edited.join("\n").as_bytes(), &key, &[]) {
            Err(VerifyError::Failed(failure)) => {
                assert!(failure.to_string().starts_with(why), "{failure}")
            }
            other => panic!("expected {why:?}, got {other:?}"),
        }
    }
}

/// The same export in the form this service writes (entries as their
/// canonical bytes), which the verifier checks on its fast path.
#[test]
fn the_identities_export_in_canonical_form_verifies_on_the_fast_path() {
    use consent_ledger::ledger::note::Verifier;
    use consent_ledger::ledger::verify::{verify, VerifyError};
    let v = identity_vectors();
    let key = Verifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    let text = include_str!("../vectors/export-identities-v1.ndjson");
    let lines: Vec<&str> = text.lines().collect();
    let canonical = |forge: bool| {
        let mut out = vec![lines[0].to_owned()];
        for (i, item) in v["entries"].as_array().unwrap().iter().enumerate() {
            let mut openings = item["openings"].clone();
            if forge && i == 3 {
                openings["linked"]["user_id"] = Value::String("BR.ENT.88012345678901234567".into());
            }
            out.push(format!(
                "{{\"entry\":{},\"leaf_hash\":\"{}\",\"openings\":{}}}",
                item["jcs"].as_str().unwrap(),
                item["leaf_hash"].as_str().unwrap(),
                openings
            ));
        }
        out.push(lines.last().unwrap().to_string());
        out.join("\n")
    };
    let verified = verify(canonical(false).as_bytes(), &key, &[]).unwrap();
    assert_eq!((verified.entries, verified.opened), (6, 6));
    match verify(canonical(true).as_bytes(), &key, &[]) {
        Err(VerifyError::Failed(f)) => assert_eq!(
            f.to_string(),
            "seq 3: the linked opening does not match its commitment"
        ),
        other => panic!("{other:?}"),
    }
}
