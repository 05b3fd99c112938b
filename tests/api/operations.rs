//! The operator's commands against a running service: `operator-token
//! rotate` and `backup`.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

async fn create_tenant(app: &TestApp, token: &str, id: &str) -> StatusCode {
    app.post("/v1/tenants", token, &json!({"id": id, "brand": "Makro"}))
        .await
        .status
}

/// A rotated operator token works at once on the running service (and on
/// another instance); the old one does not; the file that held the old
/// one is gone.
#[both]
async fn a_rotated_operator_token_replaces_the_old_one() {
    let app = spawn_app_with(|args| args.operator_token = None).await;
    let file = app.data_dir().join("operator.token");
    let old = std::fs::read_to_string(&file).expect("the generated token");
    let old = old.trim();
    assert_eq!(create_tenant(&app, old, "first").await, StatusCode::CREATED);
    // Another instance on the same database (on SQLite, what a restart finds).
    let (data, url) = (app.data_dir(), app.database_url());
    let other = spawn_app_with(move |args| {
        args.data_dir = Some(data);
        args.operator_token = None;
        if let Some(url) = url {
            args.database_url = Some(consent_ledger::config::Secret::new(url));
        }
    })
    .await;
    assert_eq!(
        create_tenant(&other, old, "second").await,
        StatusCode::CREATED
    );

    let (code, out, err) = run_cli(&["operator-token", "rotate"], Some(&app.data_dir()));
    assert_eq!(code, 0, "{out}{err}");
    let new = out.trim();
    assert!(new.starts_with("clo_") && new.len() == 47, "{new:?}");
    assert!(!file.exists(), "the old token's file is removed");
    for instance in [&app, &other] {
        assert_eq!(
            create_tenant(instance, old, "refused").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(create_tenant(&app, new, "third").await, StatusCode::CREATED);
    assert_eq!(
        create_tenant(&other, new, "fourth").await,
        StatusCode::CREATED
    );
}

/// With the token set in the settings, the stored one is not used:
/// rotating it would change nothing, so the command refuses.
#[both]
async fn rotation_refuses_a_configured_token() {
    let app = spawn_app().await;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_consent-ledger"));
    let url = app.database_url();
    command
        .args(["operator-token", "rotate"])
        .env("CONSENT_LEDGER_DATA_DIR", app.data_dir())
        .env("CONSENT_LEDGER_ORIGIN", "ledger.test")
        .env("CONSENT_LEDGER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env_remove("DATABASE_URL");
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    let out = command.output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONSENT_LEDGER_OPERATOR_TOKEN"), "{err}");
    assert!(!err.contains(OPERATOR_TOKEN), "{err}");
    let t = app.tenant("makro", "Makro").await;
    assert!(!t.admin.is_empty(), "the configured token still works");
}

/// A backup taken while opt-ins are being recorded is consistent: it holds
/// every opt-in acknowledged before it began, restores into a data dir of
/// its own and passes `verify-db`; it is private and never overwrites.
/// On PostgreSQL the command says to use PostgreSQL's tools.
#[both]
async fn a_backup_under_concurrent_appends_restores_and_verifies() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let out = app.scratch().join("backup.db");
    let out_text = out.display().to_string();
    if app.database_url().is_some() {
        let (code, _, err) = run_cli(&["backup", "--out", &out_text], Some(&app.data_dir()));
        assert_eq!(code, 1);
        assert!(err.contains("pg_basebackup"), "{err}");
        assert!(!out.exists());
        return;
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (address, collector) = (app.address.clone(), t.collector.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0..60 {
                    let body = web_opt_in(&format!("+49151{w}{i:07}"), "Makro", &["marketing"]);
                    let answer = client
                        .post(format!("{address}/v1/opt-ins"))
                        .bearer_auth(&collector)
                        .json(&body)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(answer.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    // Let some land, then back up while the others are being written.
    while tree_size(&app, &t).await < 40 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = tree_size(&app, &t).await;
    let data = app.data_dir();
    let path = out_text.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || run_cli(&["backup", "--out", &path], Some(&data)))
            .await
            .unwrap();
    assert_eq!(code, 0, "{err}");
    for writer in writers {
        writer.await.unwrap();
    }
    let after = tree_size(&app, &t).await;
    assert_eq!(after, 240);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (code, _, err) = run_cli(&["backup", "--out", &out_text], Some(&app.data_dir()));
    assert_eq!(code, 1, "an existing file is never overwritten");
    assert!(err.contains("must not exist"), "{err}");

    // Restore: the backup as the database of a new data dir, with the
    // master key (kept apart in production).
    let restored = app.scratch().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&out, restored.join("consent-ledger.db")).unwrap();
    std::fs::copy(
        app.data_dir().join("master.key"),
        restored.join("master.key"),
    )
    .unwrap();
    let (code, out_text, err) = run_cli(&["verify-db"], Some(&restored));
    assert_eq!(code, 0, "{out_text}{err}");
    let (code, export, err) = run_cli(
        &["export", "--tenant", "makro", "--no-openings"],
        Some(&restored),
    );
    assert_eq!(code, 0, "{err}");
    let header: serde_json::Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    let size = header["tree_size"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&size),
        "the backup holds {size} entries; {before} were acknowledged before it began"
    );
}

async fn tree_size(app: &TestApp, t: &Tenant) -> u64 {
    app.get("/v1/tenant", &t.admin).await.body["tree_size"]
        .as_u64()
        .unwrap()
}

/// Someone who opens the service in a browser lands on its documentation.
#[both]
async fn the_root_leads_to_the_docs() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(app.url("/")).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()["location"], "/docs/");
    let posted = client.post(app.url("/")).send().await.unwrap();
    assert_eq!(posted.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
}
