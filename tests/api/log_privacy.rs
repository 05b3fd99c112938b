//! The service's own log, at `debug`, over a run of the suite's scenarios
//! (keys, settings, opt-ins with evidence, checks, webhooks, failed
//! authentications, reads of openings, exports, an erasure), holds no phone
//! number, API key, operator token, channel secret, salt or evidence body
//! (docs/privacy.md).

use crate::abuse::serve;
use crate::channels::{hub_signature, settings, text, VERIFY_TOKEN, WA_PREVIOUS, WA_SECRET};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NUMBER: &str = "+4915111223344";
const WEBHOOK_NUMBER: &str = "+4915155667788";
const AGENT: &str = "PrivacyProbe/2.1 (evidence)";

/// What the log must never show, gathered as the scenario runs.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        self.0.push((what.to_owned(), value.to_owned()));
    }

    /// Salts and evidence bodies of an entry's openings.
    fn add_openings(&mut self, openings: &Value) {
        for (what, value) in [
            ("a subject salt", &openings["subject"]["salt"]),
            ("an evidence salt", &openings["evidence"]["salt"]),
        ] {
            if let Some(salt) = value.as_str() {
                self.add(what, salt);
            }
        }
        if openings["evidence"]["body"].is_object() {
            self.add(
                "an evidence body",
                &openings["evidence"]["body"].to_string(),
            );
        }
    }
}

async fn signed_whatsapp(app: &TestApp, payload: &Value, secret: &str) -> StatusCode {
    let body = serde_json::to_vec(payload).expect("json");
    app.client
        .post(app.url("/webhooks/whatsapp/makro"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", hub_signature(secret, &body))
        .body(body)
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn the_log_holds_no_number_key_secret_salt_or_evidence() {
    let served = serve(&[("RUST_LOG", "debug")]);
    let app = &served.app;
    let mut secrets = Secrets::default();
    for (what, value) in [
        ("a number", NUMBER),
        ("a number without its +", &NUMBER[1..]),
        ("a webhook number", WEBHOOK_NUMBER),
        ("a webhook number without its +", &WEBHOOK_NUMBER[1..]),
        ("the operator token", OPERATOR_TOKEN),
        ("the app secret", WA_SECRET),
        ("the previous app secret", WA_PREVIOUS),
        ("the verify token", VERIFY_TOKEN),
        ("an evidence value", AGENT),
    ] {
        secrets.add(what, value);
    }

    let t = app.tenant("makro", "Makro").await;
    for (role, key) in [
        ("admin", &t.admin),
        ("collector", &t.collector),
        ("sender", &t.sender),
        ("auditor", &t.auditor),
    ] {
        secrets.add(&format!("the {role} key"), key);
        // The secret part alone (after `clk_<id>_`).
        secrets.add(&format!("the {role} key's secret"), &key[17..]);
    }
    let put = app.put("/v1/channels", &t.admin, &settings()).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let _ = app.get("/v1/channels", &t.admin).await;

    // Recording and checks, with and without Idempotency-Key.
    let mut opt_in = web_opt_in(NUMBER, "Makro", &["marketing"]);
    opt_in["evidence"]["user_agent"] = json!(AGENT);
    let recorded = app
        .post_with(
            "/v1/opt-ins",
            &t.collector,
            &opt_in,
            &[("Idempotency-Key", "privacy-1")],
        )
        .await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
    let check = json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.check(&t, check.clone()).await.status, StatusCode::OK);
    let batch = app
        .post(
            "/v1/checks/batch",
            &t.sender,
            &json!({"checks": [check, {"number": "nonsense"}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK);
    let interaction = json!({"number": NUMBER, "received_at": at(-10)});
    assert_eq!(
        app.post("/v1/interactions", &t.collector, &interaction)
            .await
            .status,
        StatusCode::OK
    );
    let bad = app
        .opt_in(
            &t,
            json!({"number": "+49 151 1122 3344 99", "channel": "web"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Webhooks: a STOP and a reply, signed; a bad signature; handshakes.
    let wa_id = &WEBHOOK_NUMBER[1..];
    for (id, body) in [("wamid.privacy.1", "Hello"), ("wamid.privacy.2", "STOP")] {
        let status =
            signed_whatsapp(app, &text(wa_id, id, body, false, at_secs()), WA_SECRET).await;
        assert_eq!(status, StatusCode::OK);
    }
    // A user id: linked to the number, then a STOP by the user id alone,
    // and a check by it.
    let user_id = "DE.7781234567890123";
    secrets.add("a user id", user_id);
    let mut linked = text(wa_id, "wamid.privacy.4", "Hi", false, at_secs());
    linked["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = json!(user_id);
    let mut alone = text(wa_id, "wamid.privacy.5", "STOP", false, at_secs());
    let value = &mut alone["entry"][0]["changes"][0]["value"];
    value["contacts"][0] = json!({"profile": {"name": "Privacy"}, "user_id": user_id});
    value["messages"][0]
        .as_object_mut()
        .expect("a message")
        .remove("from");
    for payload in [linked, alone] {
        assert_eq!(
            signed_whatsapp(app, &payload, WA_SECRET).await,
            StatusCode::OK
        );
    }
    let by_user_id = app
        .check(&t, json!({"user_id": user_id, "purpose": "marketing"}))
        .await;
    assert_eq!(by_user_id.status, StatusCode::OK, "{}", by_user_id.body);
    assert_eq!(by_user_id.body["reason"], "opted_out");
    let forged = signed_whatsapp(
        app,
        &text(wa_id, "wamid.privacy.3", "START", false, at_secs()),
        "wrong-secret-0123456789",
    )
    .await;
    assert_eq!(forged, StatusCode::UNAUTHORIZED);
    for token in [VERIFY_TOKEN, "a-wrong-verify-token"] {
        let url = format!(
            "/webhooks/whatsapp/makro?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42"
        );
        let _ = app.client.get(app.url(&url)).send().await.expect("request");
    }

    // Failed authentications with every kind of credential.
    let forged_key = format!("{}{}", &t.admin[..17], "A".repeat(43));
    secrets.add("a forged key", &forged_key);
    for key in [
        forged_key.as_str(),
        "clk_000000000000_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        OPERATOR_TOKEN,
    ] {
        let _ = app.get("/v1/tenant", key).await;
    }
    let _ = app
        .post(
            "/v1/tenants",
            "not-the-operator-token-0123456789abcdef",
            &json!({"id": "x", "brand": "X"}),
        )
        .await;

    // Reads of openings, exports, dossiers, then an erasure.
    for seq in 0..2 {
        let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
        assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
        secrets.add_openings(&entry.body["openings"]);
        let _ = app
            .get(&format!("/v1/entries/{seq}/receipt"), &t.auditor)
            .await;
    }
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(query.status, StatusCode::OK);
    let (status, _) = app.get_text("/v1/export", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post_text("/v1/export/dossier", &t.auditor, &json!({"number": NUMBER}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let _ = app.opt_out(&t, api_opt_out(NUMBER)).await;

    // Let the log catch up with the last request, then read it whole.
    let (status, _) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = served.log.lock().unwrap().clone();
    assert!(
        log.contains("recorded") && log.contains("authentication failed"),
        "{log}"
    );
    let leaks: Vec<String> = secrets
        .0
        .iter()
        .filter(|(_, value)| log.contains(value.as_str()))
        .map(|(what, _)| what.clone())
        .collect();
    assert!(leaks.is_empty(), "the log shows {leaks:?}");
}

/// Now in unix seconds (webhook timestamps).
fn at_secs() -> i64 {
    crate::channels::now_secs()
}

/// A client error logs one short line: its status and code in the
/// request's span (method, route, request id); never the problem's detail,
/// a debug dump, or what the client sent.
#[tokio::test]
async fn a_client_error_logs_one_short_line() {
    let served = serve(&[]);
    let app = &served.app;
    let t = app.tenant("makro", "Makro").await;
    let answer = app
        .check(
            &t,
            json!({"number": "4915112345678", "purpose": "marketing"}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    let wanted = |log: &str| log.lines().any(|l| l.contains("client error"));
    let mut log = String::new();
    for _ in 0..100 {
        log = served.log.lock().unwrap().clone();
        if wanted(&log) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("client error")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    for part in ["status=422", "invalid_number", "/v1/checks", "request_id="] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(line.len() < 300, "{} characters: {line}", line.len());
    assert!(!line.contains("4915112345678"), "{line}");
    assert!(!log.contains("Error encountered"), "{log}");
}
