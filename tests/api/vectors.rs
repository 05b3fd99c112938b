//! Known-answer tests against `tests/vectors/` (copied from the project's
//! shared vectors, computed outside our code).

use consent_ledger::keys::MasterKey;
use consent_ledger::ledger::entry::{
    evidence_commitment, jcs, sha256_hex, subject_commitment, Entry,
};
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
