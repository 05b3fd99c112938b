//! A restored older copy of the SQLite database makes the service refuse
//! to sign rather than fork. (SQLite only: the copy is a `VACUUM INTO`
//! file; the refusal itself does not depend on the backend.)

use crate::helpers::*;
use crate::tamper::{signed_log, tamper};
use consent_ledger::config::SettingsArgs;
use reqwest::StatusCode;

#[tokio::test]
async fn a_restored_older_database_makes_the_service_refuse_to_sign() {
    let (app, t) = signed_log().await;
    // Back up at size 6, then grow to 8 and sign.
    let backup = app.scratch().join("backup.db");
    tamper(&app, &[&format!("VACUUM INTO '{}'", backup.display())]);
    for i in 6..8 {
        app.recorded_opt_in(
            &t,
            web_opt_in(&format!("+49151000000{i:02}"), "Makro", &["marketing"]),
        )
        .await;
    }
    let (status, _) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    // A second instance on the restored copy, with the same master key and signer state.
    let restored_dir = app.scratch().join("restored");
    std::fs::create_dir_all(&restored_dir).unwrap();
    std::fs::copy(&backup, restored_dir.join("consent-ledger.db")).unwrap();
    let data = app.data_dir();
    let restored = spawn_app_with(|args: &mut SettingsArgs| {
        args.data_dir = Some(restored_dir.clone());
        args.master_key_file = Some(data.join("master.key"));
        args.signer_state_file = Some(data.join("signer.state"));
    })
    .await;
    // What it already signed it may show again; the tree is at 6.
    let (status, note) = restored.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(note.starts_with("ledger.test/makro\n6\n"));
    // A different 7th entry: signing size 7 would fork from the signed 8.
    restored
        .recorded_opt_in(&t, web_opt_in("+4915199999999", "Makro", &["utility"]))
        .await;
    let refused = restored.get("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "signing_refused");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("restored"));
    // Growing past the signed size does not help: the tree at 8 differs.
    for i in 0..2 {
        restored
            .recorded_opt_in(
                &t,
                web_opt_in(&format!("+49151888888{i:02}"), "Makro", &["utility"]),
            )
            .await;
    }
    let forked = restored.get("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(forked.code(), "signing_refused");
    assert!(
        forked.body["detail"].as_str().unwrap().contains("forked"),
        "{}",
        forked.body
    );
    // Receipts and exports need a checkpoint, so they refuse too.
    assert_eq!(
        restored
            .get("/v1/entries/8/receipt", &t.auditor)
            .await
            .code(),
        "signing_refused"
    );
    assert_eq!(
        restored.get("/v1/export", &t.auditor).await.code(),
        "signing_refused"
    );
}

/// Runs a command on a restored data dir with the original master key and
/// signer state (as an operator restoring a backup would).
fn run_restored(
    args: &[&str],
    dir: &std::path::Path,
    original: &std::path::Path,
) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test")
        .env("CONSENT_LEDGER_DATA_DIR", dir)
        .env(
            "CONSENT_LEDGER_MASTER_KEY_FILE",
            original.join("master.key"),
        )
        .env(
            "CONSENT_LEDGER_SIGNER_STATE_FILE",
            original.join("signer.state"),
        )
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn restored_copy(app: &TestApp, backup: &std::path::Path, name: &str) -> std::path::PathBuf {
    let dir = app.scratch().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(backup, dir.join("consent-ledger.db")).unwrap();
    dir
}

/// After a restore from a backup older than what was signed, `restore-tail`
/// re-appends the missing entries from a verified export (opt-outs, an
/// erasure with its suppression) and signing resumes on the same tree; a
/// forked copy, another log's export or one without openings is refused.
#[tokio::test]
async fn restore_tail_re_appends_what_was_signed_and_signing_resumes() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let number = |i: u8| format!("+491510000010{i}");
    for i in 0..3 {
        app.recorded_opt_in(&t, web_opt_in(&number(i), "Makro", &["marketing"]))
            .await;
    }
    let backup = app.scratch().join("backup.db");
    let (code, _, err) = run_cli(
        &["backup", "--out", backup.to_str().unwrap()],
        Some(&app.data_dir()),
    );
    assert_eq!(code, 0, "{err}");
    // After the backup: an opt-out, a new opt-in, an erasure (its opt-out
    // and its entry).
    app.recorded_opt_out(&t, api_opt_out(&number(0))).await;
    app.recorded_opt_in(&t, web_opt_in(&number(3), "Makro", &["marketing"]))
        .await;
    let erased = app
        .post(
            "/v1/subjects/erase",
            &t.admin,
            &serde_json::json!({"number": number(1)}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let (status, signed) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(signed.starts_with("ledger.test/makro\n7\n"), "{signed}");
    let (_, export) = app.get_text("/v1/export", &t.auditor).await;
    let export_path = write_file(&app.scratch(), "export.ndjson", &export);
    let (_, bare) = app.get_text("/v1/export?openings=none", &t.auditor).await;
    let bare_path = write_file(&app.scratch(), "bare.ndjson", &bare);
    let original = app.data_dir();

    // Refused: an export without openings, and a copy that forked.
    let dir = restored_copy(&app, &backup, "restored");
    let (code, _, err) = run_restored(&["restore-tail", "--export", &bare_path], &dir, &original);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no openings"), "{err}");
    let forked = restored_copy(&app, &backup, "forked");
    let fork_app = {
        let (d, o) = (forked.clone(), original.clone());
        spawn_app_with(move |args: &mut SettingsArgs| {
            args.data_dir = Some(d);
            args.master_key_file = Some(o.join("master.key"));
            args.signer_state_file = Some(o.join("signer.state"));
        })
        .await
    };
    fork_app
        .recorded_opt_in(&t, web_opt_in("+4915199999999", "Makro", &["utility"]))
        .await;
    let (code, _, err) = run_restored(
        &["restore-tail", "--export", &export_path],
        &forked,
        &original,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a prefix"), "{err}");

    // The restore.
    let (code, out, err) =
        run_restored(&["restore-tail", "--export", &export_path], &dir, &original);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("re-appended 4 entries (size 3 → 7)"), "{out}");
    assert!(out.contains("signed a checkpoint at size 7"), "{out}");
    // Again: nothing left to do.
    let (code, out, err) =
        run_restored(&["restore-tail", "--export", &export_path], &dir, &original);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("re-appended 0 entries (size 7 → 7)"), "{out}");
    let (code, out, err) = run_restored(&["verify-db"], &dir, &original);
    assert_eq!(code, 0, "{out}{err}");

    let restored = {
        let o = original.clone();
        spawn_app_with(move |args: &mut SettingsArgs| {
            args.data_dir = Some(dir);
            args.master_key_file = Some(o.join("master.key"));
            args.signer_state_file = Some(o.join("signer.state"));
        })
        .await
    };
    // The same signed tree, and the consent state rebuilt.
    let (_, note) = restored.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(
        note.lines().take(3).collect::<Vec<_>>(),
        signed.lines().take(3).collect::<Vec<_>>()
    );
    let check =
        |i: u8| serde_json::json!({"number": number(i), "purpose": "marketing", "brand": "Makro"});
    assert_eq!(restored.reason(&t, check(0)).await, "opted_out");
    assert_eq!(restored.reason(&t, check(1)).await, "opted_out");
    assert_eq!(restored.reason(&t, check(2)).await, "allowed");
    assert_eq!(restored.reason(&t, check(3)).await, "allowed");
    // The erased number is suppressed again: an old opt-in is refused.
    let mut old = web_opt_in(&number(1), "Makro", &["marketing"]);
    old["captured_at"] = serde_json::json!(at(-3600));
    let refused = restored.opt_in(&t, old).await;
    assert_eq!(refused.code(), "suppressed", "{}", refused.body);
    // Signing goes on from there.
    restored
        .recorded_opt_in(&t, web_opt_in(&number(4), "Makro", &["marketing"]))
        .await;
    let (status, next) = restored.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert!(next.starts_with("ledger.test/makro\n8\n"), "{next}");
    let kept = write_file(&app.scratch(), "kept.checkpoint", &signed);
    let (_, later) = restored.get_text("/v1/export", &t.auditor).await;
    let later = write_file(&app.scratch(), "later.ndjson", &later);
    let vkey = restored.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, err) = run_cli(
        &["verify", &later, "--key", &vkey, "--trusted", &kept],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
}

/// `restore-tail` re-appends links and a closed group (docs/identities.md and docs/ledger-format.md): after the restore the linked person is one group again, and the
/// group a changed number closed stays closed, so the number's new owner
/// starts from nothing.
#[tokio::test]
async fn restore_tail_re_appends_links_and_closed_groups() {
    use crate::channels::{configured, whatsapp};
    use crate::identities::{
        changed_number, decisions, number_and_user, said, user, From, PARENT, PHONE, USER, WA_ID,
    };
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(&app, &said(user(USER), "wamid.r0", "JOIN MAKRO", 600)).await;
    let backup = app.scratch().join("backup.db");
    let (code, _, err) = run_cli(
        &["backup", "--out", backup.to_str().unwrap()],
        Some(&app.data_dir()),
    );
    assert_eq!(code, 0, "{err}");
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.r1", "hi", 500),
    )
    .await;
    let with_parent = From {
        parent: Some(PARENT),
        ..user(USER)
    };
    whatsapp(&app, &said(with_parent, "wamid.r2", "hi", 450)).await;
    whatsapp(
        &app,
        &changed_number(WA_ID, "5511900000000", "wamid.r3", 400),
    )
    .await;
    let (status, signed) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(signed.starts_with("ledger.test/makro\n4\n"), "{signed}");
    let (_, export) = app.get_text("/v1/export", &t.auditor).await;
    let export_path = write_file(&app.scratch(), "links.ndjson", &export);
    let original = app.data_dir();
    let dir = restored_copy(&app, &backup, "restored-links");
    let (code, out, err) =
        run_restored(&["restore-tail", "--export", &export_path], &dir, &original);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("re-appended 3 entries (size 1 → 4)"), "{out}");
    let (code, out, err) = run_restored(&["verify-db"], &dir, &original);
    assert_eq!(code, 0, "{out}{err}");
    let restored = {
        let o = original.clone();
        spawn_app_with(move |args: &mut SettingsArgs| {
            args.data_dir = Some(dir);
            args.master_key_file = Some(o.join("master.key"));
            args.signer_state_file = Some(o.join("signer.state"));
        })
        .await
    };
    assert_eq!(
        decisions(&restored, &t, &[PHONE, USER, PARENT]).await,
        ["opted_out", "opted_out", "opted_out"]
    );
    // The number's new owner: a new subject, the closed group untouched.
    let new_owner = number_and_user(WA_ID, "BR.31337");
    whatsapp(&restored, &said(new_owner, "wamid.r4", "JOIN MAKRO", 100)).await;
    assert_eq!(
        decisions(&restored, &t, &[PHONE, "BR.31337", USER, PARENT]).await,
        ["allowed", "allowed", "opted_out", "opted_out"]
    );
}
