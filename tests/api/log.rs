//! The verifiable log through the API: checkpoints, keys, proofs, receipts,
//! exports and dossiers, each checked by the offline verifier.

use crate::helpers::*;
use consent_ledger::ledger::merkle;
use consent_ledger::ledger::note::{open_checkpoint, Verifier};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn verifier_key(app: &TestApp, t: &Tenant) -> String {
    app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A tenant with a small history: opt-ins, opt-outs of two people.
async fn populated(app: &TestApp) -> Tenant {
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    app.recorded_opt_in(&t, web_opt_in("+4915199999999", "Makro", &["utility"]))
        .await;
    app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["utility", "marketing"]))
        .await;
    app.recorded_opt_out(&t, api_opt_out("+4915199999999"))
        .await;
    t
}

#[both]
async fn a_new_tenant_has_a_signed_size_0_checkpoint() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let vkey = verifier_key(&app, &t).await;
    let (status, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let cp = open_checkpoint(&note, &Verifier::parse(&vkey).unwrap()).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("ledger.test/makro", 0));
    assert_eq!(cp.root, merkle::empty_root());
    let keys = app.get("/v1/log/keys", &t.auditor).await;
    assert_eq!(
        keys.body,
        json!({"keys": [{"verifier_key": vkey, "status": "current", "first_size": 0, "last_size": null}]})
    );
}

#[both]
async fn checkpoints_are_signed_when_asked_and_the_tree_grew() {
    let app = spawn_app().await;
    let t = populated(&app).await;
    let key = Verifier::parse(&verifier_key(&app, &t).await).unwrap();
    let (_, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let cp = open_checkpoint(&note, &key).unwrap();
    assert_eq!(cp.size, 5);
    // Asked again without growth: the same note.
    assert_eq!(app.get_text("/v1/log/checkpoint", &t.auditor).await.1, note);
    // Every signed checkpoint is kept.
    let (status, zero) = app.get_text("/v1/log/checkpoints?size=0", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(open_checkpoint(&zero, &key).unwrap().size, 0);
    assert_eq!(
        app.get_text("/v1/log/checkpoints?size=5", &t.auditor)
            .await
            .1,
        note
    );
    assert_eq!(
        app.get("/v1/log/checkpoints?size=3", &t.auditor)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/log/checkpoints?size=x", &t.auditor)
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/v1/log/checkpoint", &t.sender).await.status,
        StatusCode::FORBIDDEN
    );
}

#[both]
async fn proofs_lead_to_signed_roots() {
    let app = spawn_app().await;
    let t = populated(&app).await;
    let key = Verifier::parse(&verifier_key(&app, &t).await).unwrap();
    let (_, note5) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let cp5 = open_checkpoint(&note5, &key).unwrap();
    for seq in 0..5 {
        let p = app
            .get(&format!("/v1/log/proof/inclusion?seq={seq}"), &t.auditor)
            .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_eq!(p.body["tree_size"], 5);
        let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
        assert_eq!(p.body["leaf_hash"], entry.body["leaf_hash"]);
        let proof = hashes_of(&p.body["proof"]);
        assert!(merkle::verify_inclusion(
            &hash_of_hex(p.body["leaf_hash"].as_str().unwrap()),
            seq,
            5,
            &proof,
            &cp5.root
        ));
    }
    // Grow, sign again, and prove the new tree extends the old one.
    app.recorded_opt_in(&t, web_opt_in("+4915100000001", "Makro", &["marketing"]))
        .await;
    app.recorded_opt_in(&t, web_opt_in("+4915100000002", "Makro", &["marketing"]))
        .await;
    let (_, note7) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let cp7 = open_checkpoint(&note7, &key).unwrap();
    assert_eq!(cp7.size, 7);
    let c = app
        .get("/v1/log/proof/consistency?from=5&to=7", &t.auditor)
        .await;
    assert_eq!(c.status, StatusCode::OK);
    let proof = hashes_of(&c.body["proof"]);
    assert!(merkle::verify_consistency(
        5, 7, &cp5.root, &cp7.root, &proof
    ));
    let empty = app
        .get("/v1/log/proof/consistency?from=0&to=7", &t.auditor)
        .await;
    assert_eq!(empty.body["proof"], json!([]));
    let same = app
        .get("/v1/log/proof/consistency?from=7&to=7", &t.auditor)
        .await;
    assert_eq!(same.body["proof"], json!([]));
    // An explicit older size.
    let old = app
        .get("/v1/log/proof/inclusion?seq=2&size=5", &t.auditor)
        .await;
    assert_eq!(old.body["tree_size"], 5);
    // Out of range: 422.
    for bad in [
        "/v1/log/proof/inclusion?seq=7&size=7",
        "/v1/log/proof/inclusion?seq=1&size=8",
        "/v1/log/proof/consistency?from=5&to=8",
        "/v1/log/proof/consistency?from=6&to=5",
        "/v1/log/proof/inclusion?seq=-1",
    ] {
        let answer = app.get(bad, &t.auditor).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            answer.body
        );
    }
}

#[both]
async fn receipts_exports_and_dossiers_verify_offline() {
    let app = spawn_app().await;
    let t = populated(&app).await;
    let vkey = verifier_key(&app, &t).await;
    let dir = app.scratch();
    // A receipt for an entry not yet covered: a checkpoint is signed first.
    let receipt = app.get("/v1/entries/3/receipt", &t.auditor).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.body);
    assert_eq!(receipt.body["format"], "consent-ledger-receipt/v1");
    assert_eq!(receipt.body["tree_size"], 5);
    assert_eq!(receipt.body["verifier_key"], vkey.as_str());
    assert_eq!(receipt.body["openings"]["subject"]["e164"], NUMBER);
    let path = write_file(
        &dir,
        "receipt.json",
        &serde_json::to_string_pretty(&receipt.body).unwrap(),
    );
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified: receipt"), "{out}");
    // The export, with and without openings.
    let (status, export) = app.get_text("/v1/export", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(
        lines[0],
        json!({"format": "consent-ledger-export/v1", "log": "ledger.test/makro", "tree_size": 5, "verifier_key": vkey})
    );
    assert_eq!(lines[1]["entry"]["seq"], 0);
    assert!(lines[6]["checkpoint"]
        .as_str()
        .unwrap()
        .starts_with("ledger.test/makro\n5\n"));
    let path = write_file(&dir, "export.ndjson", &export);
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 entries (5 opened)"), "{out}");
    let (_, bare) = app.get_text("/v1/export?openings=none", &t.auditor).await;
    assert!(bare
        .lines()
        .skip(1)
        .take(5)
        .all(|l| l.contains("\"openings\":null")));
    let path = write_file(&dir, "bare.ndjson", &bare);
    let (code, out, _) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(0 opened)"), "{out}");
    // An older checkpoint's size.
    let (status, old) = app.get_text("/v1/export?size=0", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(old.lines().count(), 2);
    assert_eq!(
        app.get("/v1/export?size=4", &t.auditor).await.status,
        StatusCode::NOT_FOUND
    );
    // The dossier of one number: its entries with inclusion proofs.
    let (status, dossier) = app
        .post_text("/v1/export/dossier", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = dossier
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["filtered"], true);
    let seqs: Vec<u64> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l["entry"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 2, 3]);
    let path = write_file(&dir, "dossier.ndjson", &dossier);
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified: dossier"), "{out}");
    let (_, unknown) = app
        .post_text(
            "/v1/export/dossier",
            &t.auditor,
            &json!({"number": "+4915122222222"}),
        )
        .await;
    assert_eq!(unknown.lines().count(), 2);
    // Another tenant's key does not verify this log.
    let other = app.tenant("other", "Other").await;
    let other_key = verifier_key(&app, &other).await;
    let path = write_file(&dir, "export2.ndjson", &export);
    let (code, out, _) = run_cli(&["verify", &path, "--key", &other_key], None);
    assert_eq!(code, 1);
    assert!(out.starts_with("header: "), "{out}");
}

#[both]
async fn a_kept_checkpoint_guards_against_rewritten_history() {
    let app = spawn_app().await;
    let t = populated(&app).await;
    let vkey = verifier_key(&app, &t).await;
    let dir = app.scratch();
    let (_, kept) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    let kept_path = write_file(&dir, "kept.note", &kept);
    app.recorded_opt_in(&t, web_opt_in("+4915100000003", "Makro", &["marketing"]))
        .await;
    let (_, export) = app.get_text("/v1/export", &t.auditor).await;
    let path = write_file(&dir, "export.ndjson", &export);
    let (code, out, _) = run_cli(
        &["verify", &path, "--key", &vkey, "--trusted", &kept_path],
        None,
    );
    assert_eq!(code, 0, "{out}");
    // A forged "kept" checkpoint (someone else's key) is refused.
    let forged = kept.replace("ledger.test/makro\n5\n", "ledger.test/makro\n6\n");
    let forged_path = write_file(&dir, "forged.note", &forged);
    let (code, out, _) = run_cli(
        &["verify", &path, "--key", &vkey, "--trusted", &forged_path],
        None,
    );
    assert_eq!(code, 1);
    assert!(out.starts_with("checkpoint: "), "{out}");
    // Unreadable input and a malformed key exit 2.
    assert_eq!(
        run_cli(&["verify", "/nonexistent", "--key", &vkey], None).0,
        2
    );
    assert_eq!(run_cli(&["verify", &path, "--key", "garbage"], None).0, 2);
    let junk = write_file(&dir, "junk.txt", "not json at all\n");
    assert_eq!(run_cli(&["verify", &junk, "--key", &vkey], None).0, 2);
}

#[both]
async fn signing_keys_rotate_with_a_note_signed_by_both() {
    let app = spawn_app().await;
    let t = populated(&app).await;
    let old_key = verifier_key(&app, &t).await;
    let data = app.data_dir();
    let (code, out, err) = run_cli(&["signing-key", "rotate", "--tenant", "makro"], Some(&data));
    assert_eq!(code, 0, "{out}{err}");
    let new_key = verifier_key(&app, &t).await;
    assert_ne!(old_key, new_key);
    assert!(out.contains(&new_key));
    let keys = app.get("/v1/log/keys", &t.auditor).await;
    assert_eq!(
        keys.body["keys"],
        json!([
            {"verifier_key": new_key, "status": "current", "first_size": 5, "last_size": null},
            {"verifier_key": old_key, "status": "retired", "first_size": 0, "last_size": 5}
        ])
    );
    // The rotation note verifies with both keys.
    let (_, note) = app.get_text("/v1/log/checkpoints?size=5", &t.auditor).await;
    assert_eq!(
        open_checkpoint(&note, &Verifier::parse(&old_key).unwrap())
            .unwrap()
            .size,
        5
    );
    assert_eq!(
        open_checkpoint(&note, &Verifier::parse(&new_key).unwrap())
            .unwrap()
            .size,
        5
    );
    // Later checkpoints are signed by the new key only.
    app.recorded_opt_in(&t, web_opt_in("+4915100000004", "Makro", &["marketing"]))
        .await;
    let (_, later) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert!(open_checkpoint(&later, &Verifier::parse(&new_key).unwrap()).is_ok());
    assert!(open_checkpoint(&later, &Verifier::parse(&old_key).unwrap()).is_err());
    let (_, export) = app.get_text("/v1/export", &t.auditor).await;
    let path = write_file(&app.scratch(), "export.ndjson", &export);
    assert_eq!(run_cli(&["verify", &path, "--key", &new_key], None).0, 0);
    // An older export names the key that signed its checkpoint.
    let (_, old_export) = app.get_text("/v1/export?size=0", &t.auditor).await;
    assert!(old_export.starts_with("{\"format\"") && old_export.contains(&old_key));
    let path = write_file(&app.scratch(), "old.ndjson", &old_export);
    assert_eq!(run_cli(&["verify", &path, "--key", &old_key], None).0, 0);
    // verify-db accepts checkpoints of both keys within their ranges.
    let (code, out, err) = run_cli(&["verify-db"], Some(&data));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("makro: 6 entries and"), "{out}");
}

/// Signs the tree at `size` with the tenant's stored key of `status`
/// (opened with the app's master key) and stores the note, as someone
/// holding that key could; returns nothing, the row is what counts.
fn store_checkpoint_signed_by(app: &TestApp, status: &str, size: u64) {
    use consent_ledger::keys::MasterKey;
    use consent_ledger::ledger::note;
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::log;
    let (master, _) = MasterKey::load_or_generate(&app.data_dir().join("master.key")).unwrap();
    let mut conn = establish(&app.database_target()).unwrap();
    let key = log::signing_keys_of(&mut conn, &tenant_id("makro"))
        .unwrap()
        .into_iter()
        .find(|k| k.status == status)
        .expect("a key of that status")
        .open(&master)
        .expect("it opens");
    let root = log::root_at(&mut conn, &tenant_id("makro"), size).unwrap();
    let origin = "ledger.test/makro";
    let body = note::checkpoint_body(origin, size, &root);
    let signed = format!("{body}\n{}", note::signature_line(&body, origin, &key));
    log::insert_checkpoint(&mut conn, &tenant_id("makro"), size, &root, &signed, 0).unwrap();
}

/// docs/ledger-format.md: a checkpoint signed only by a retired key is valid only
/// up to that key's `last_size`.
#[both]
async fn a_retired_key_is_valid_only_up_to_its_last_size() {
    let app = spawn_app_with(|a| a.checkpoint_interval = Some("1h".into())).await;
    let t = populated(&app).await;
    let data = app.data_dir();
    let (code, out, err) = run_cli(&["signing-key", "rotate", "--tenant", "makro"], Some(&data));
    assert_eq!(code, 0, "{out}{err}");
    app.recorded_opt_in(&t, web_opt_in("+4915100000004", "Makro", &["marketing"]))
        .await;
    // Size 6, past the retired key's last size 5: the current key may sign it…
    store_checkpoint_signed_by(&app, "current", 6);
    let (code, out, _) = run_cli(&["verify-db"], Some(&data));
    assert_eq!(code, 0, "{out}");
    // …the retired one may not.
    store_checkpoint_signed_by(&app, "retired", 6);
    let (code, out, _) = run_cli(&["verify-db"], Some(&data));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("(size 6): not signed by a key of this log valid for its size"),
        "{out}"
    );
}

/// `signing-key rotate --compromised`: the old key is revoked at the
/// current size, nothing is signed with it again, the checkpoints it signed
/// before still match the entries (verify-db says they prove nothing), and
/// a checkpoint it signs later is refused.
#[both]
async fn a_compromised_key_is_revoked() {
    let app = spawn_app_with(|a| a.checkpoint_interval = Some("1h".into())).await;
    let t = populated(&app).await;
    let old_key = verifier_key(&app, &t).await;
    let data = app.data_dir();
    let (code, out, err) = run_cli(
        &[
            "signing-key",
            "rotate",
            "--tenant",
            "makro",
            "--compromised",
        ],
        Some(&data),
    );
    assert_eq!(code, 0, "{out}{err}");
    let new_key = verifier_key(&app, &t).await;
    let keys = app.get("/v1/log/keys", &t.auditor).await;
    assert_eq!(
        keys.body["keys"],
        json!([
            {"verifier_key": new_key, "status": "current", "first_size": 5, "last_size": null},
            {"verifier_key": old_key, "status": "revoked", "first_size": 0, "last_size": 5}
        ])
    );
    let (code, out, _) = run_cli(&["verify-db"], Some(&data));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 signed only by a revoked key"), "{out}");
    // Receipts of older entries rest on checkpoints the new key signed;
    // what is signed later, the revoked key never signs.
    app.recorded_opt_in(&t, web_opt_in("+4915100000004", "Makro", &["marketing"]))
        .await;
    let receipt = app.get("/v1/entries/1/receipt", &t.auditor).await;
    assert_eq!(receipt.body["verifier_key"], new_key);
    assert_eq!(receipt.body["tree_size"], 6);
    let note = receipt.body["checkpoint"].as_str().unwrap();
    assert!(open_checkpoint(note, &Verifier::parse(&new_key).unwrap()).is_ok());
    assert!(open_checkpoint(note, &Verifier::parse(&old_key).unwrap()).is_err());
    store_checkpoint_signed_by(&app, "revoked", 6);
    let (code, out, _) = run_cli(&["verify-db"], Some(&data));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(size 6): not signed by a key"), "{out}");
}

/// Checkpoints are signed in the background every
/// `CONSENT_LEDGER_CHECKPOINT_INTERVAL` while the log grows, without anyone
/// asking for one.
#[both]
async fn the_background_signs_a_grown_log_every_interval() {
    let stored = |app: &TestApp, t: &Tenant, size: u64| {
        let path = format!("/v1/log/checkpoints?size={size}");
        let app = app.url(&path);
        let auditor = t.auditor.clone();
        async move {
            reqwest::Client::new()
                .get(app)
                .bearer_auth(auditor)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let slow = spawn_app_with(|a| a.checkpoint_interval = Some("1h".into())).await;
    let slow_t = slow.tenant("makro", "Makro").await;
    slow.recorded_opt_in(&slow_t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    // Reading a stored checkpoint signs nothing.
    assert_eq!(stored(&slow, &slow_t, 1).await, StatusCode::NOT_FOUND);
    let app = spawn_app_with(|a| a.checkpoint_interval = Some("100ms".into())).await;
    let t = app.tenant("makro", "Makro").await;
    for size in 1..=2u64 {
        app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
            .await;
        let mut signed = false;
        for _ in 0..100 {
            if stored(&app, &t, size).await == StatusCode::OK {
                signed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(signed, "no checkpoint of size {size} within 5 s");
    }
    assert_eq!(stored(&slow, &slow_t, 1).await, StatusCode::NOT_FOUND);
}
