//! `verify FILE --key VKEY --from URL --token KEY`: a receipt checked
//! offline, then against the log's current checkpoint with a consistency
//! proof fetched from it: it passes for an honest log that grew, and fails
//! for a log forked from a restored backup (same signing key, another
//! history). SQLite only: the fork is made from a `backup` file.

use crate::helpers::*;
use reqwest::StatusCode;

fn opt_in(n: usize) -> serde_json::Value {
    web_opt_in(&format!("+4915160000{n:03}"), "Makro", &["marketing"])
}

/// Runs the command off the test's runtime, which also serves the apps.
async fn verify_from(path: &str, vkey: &str, base: &str, token: &str) -> (i32, String, String) {
    let args: Vec<String> = [
        "verify", path, "--key", vkey, "--from", base, "--token", token,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, None)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_receipt_is_checked_online_against_an_honest_and_a_forked_log() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    for n in 0..3 {
        app.recorded_opt_in(&t, opt_in(n)).await;
    }
    let backup = app.scratch().join("at-3.db");
    let (code, _, err) = run_cli(
        &["backup", "--out", backup.to_str().unwrap()],
        Some(&app.data_dir()),
    );
    assert_eq!(code, 0, "{err}");
    for n in 3..6 {
        app.recorded_opt_in(&t, opt_in(n)).await;
    }
    let receipt = app.get("/v1/entries/4/receipt", &t.auditor).await;
    assert_eq!(receipt.status, StatusCode::OK);
    assert_eq!(receipt.body["tree_size"], 6);
    let vkey = receipt.body["verifier_key"].as_str().unwrap().to_owned();
    let path = write_file(&app.scratch(), "receipt.json", &receipt.body.to_string());

    // The honest log, as it was and after it grew.
    let (code, out, err) = verify_from(&path, &vkey, &app.address, &t.auditor).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("consistent: the log's current checkpoint at tree size 6"),
        "{out}"
    );
    app.recorded_opt_in(&t, opt_in(6)).await;
    let (code, out, err) = verify_from(&path, &vkey, &app.address, &t.auditor).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("at tree size 7 extends it"), "{out}");

    // Credentials the log refuses: the check could not be made (2).
    let (code, _, err) = verify_from(&path, &vkey, &app.address, &t.sender).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("403"), "{err}");
    // Unreachable.
    let (code, _, err) = verify_from(&path, &vkey, "http://127.0.0.1:9", &t.auditor).await;
    assert_eq!(code, 2, "{err}");

    // A fork: the backup of size 3 restored elsewhere, with the same
    // master key (hence the same signing key) and a fresh signer state.
    let forked_dir = app.scratch().join("forked");
    std::fs::create_dir(&forked_dir).unwrap();
    std::fs::copy(&backup, forked_dir.join("consent-ledger.db")).unwrap();
    std::fs::copy(
        app.data_dir().join("master.key"),
        forked_dir.join("master.key"),
    )
    .unwrap();
    let dir = forked_dir.clone();
    let forked = spawn_app_with(move |args| args.data_dir = Some(dir)).await;
    // Smaller than the receipt's tree.
    let (code, out, err) = verify_from(&path, &vkey, &forked.address, &t.auditor).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("fewer than the 6"), "{out}");
    // Grown past it, with another history.
    for n in 100..104 {
        forked.recorded_opt_in(&t, opt_in(n)).await;
    }
    let (code, out, err) = verify_from(&path, &vkey, &forked.address, &t.auditor).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("forked or rewritten"), "{out}");
    // The receipt itself still verifies offline.
    let (code, out, _) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}");
}
