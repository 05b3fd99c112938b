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
