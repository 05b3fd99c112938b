//! `/metrics` (docs/api.md), on its own listener and 404 on the
//! API's: after traffic every series is there with values that follow from
//! it, and no label names a tenant or a number.
//! The counters belong to the test process, which other tests share, so
//! they are read before and after and their growth is checked.

use crate::channels::{configured, fixture, text, whatsapp, PHONE_NUMBER_ID};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

const NUMBER: &str = "+4915155501234";
const WA_ID: &str = "4915155509876";

pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    response.text().await.unwrap()
}

/// The value of the series `name` whose labels include every pair of
/// `labels`, or 0 when there is none yet.
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[both]
async fn metrics_follow_the_traffic_and_name_no_tenant() {
    let app = spawn_app_with(|args| {
        args.limits.auth_failures_per_minute = Some(2);
        // Only the test signs checkpoints (the unsigned count is checked).
        args.checkpoint_interval = Some("1h".into());
    })
    .await;
    let t = configured(&app).await;
    let before = scrape(&app).await;

    for n in 0..3 {
        let number = format!("{}{n}", &NUMBER[..NUMBER.len() - 1]);
        app.recorded_opt_in(&t, web_opt_in(&number, "Makro", &["marketing"]))
            .await;
    }
    app.recorded_opt_out(
        &t,
        api_opt_out(&format!("{}0", &NUMBER[..NUMBER.len() - 1])),
    )
    .await;
    let check = |n: u8| json!({"number": format!("{}{n}", &NUMBER[..NUMBER.len() - 1]), "purpose": "marketing", "brand": "Makro"});
    for n in [0, 1, 2, 1] {
        let answer = app.check(&t, check(n)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // WhatsApp: a message recorded, the same again (deduplicated), one to a
    // business number that is not the tenant's (a dead letter).
    let message = text(WA_ID, "wamid.metrics-1", "Hello", false, now_secs());
    whatsapp(&app, &message).await;
    whatsapp(&app, &message).await;
    let mut stray = fixture("text", now_secs());
    stray["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999999999999");
    stray["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = json!("wamid.metrics-2");
    whatsapp(&app, &stray).await;
    // Sign everything so far, then leave one entry unsigned.
    let (status, _) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let signed = scrape(&app).await;
    assert_eq!(value(&signed, "consent_ledger_unsigned_entries", &[]), 0.0);
    assert_eq!(
        value(&signed, "consent_ledger_checkpoint_lag_seconds", &[]),
        0.0
    );
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["utility"]))
        .await;

    let size = app.get("/v1/tenant", &t.admin).await.body["tree_size"]
        .as_f64()
        .unwrap();
    // Last, since it shuts this address out: failed authentications until
    // the address is refused.
    let wrong = format!(
        "{}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &t.sender[..17]
    );
    let mut refused = false;
    for _ in 0..4 {
        refused |= app.get("/v1/keys", &wrong).await.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused);
    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let checks = [
        ("route", "/v1/checks"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert!(
        grew("consent_ledger_http_requests_total", &checks) >= 4.0,
        "{after}"
    );
    assert!(
        grew(
            "consent_ledger_http_request_duration_seconds_count",
            &[("route", "/v1/checks")]
        ) >= 4.0
    );
    // The route is the pattern, never the path with its tenant.
    assert!(
        grew(
            "consent_ledger_http_requests_total",
            &[("route", "/webhooks/whatsapp/{tenant}"), ("status", "200")]
        ) >= 3.0
    );
    assert!(grew("consent_ledger_appends_total", &[("type", "opt_in")]) >= 4.0);
    assert!(grew("consent_ledger_appends_total", &[("type", "opt_out")]) >= 1.0);
    assert!(grew("consent_ledger_decisions_total", &[("reason", "allowed")]) >= 3.0);
    assert!(grew("consent_ledger_decisions_total", &[("reason", "opted_out")]) >= 1.0);
    for outcome in ["recorded", "deduplicated", "dead_lettered"] {
        let labels = [("provider", "whatsapp"), ("outcome", outcome)];
        assert!(
            grew("consent_ledger_webhook_events_total", &labels) >= 1.0,
            "{outcome}"
        );
    }
    assert!(
        grew(
            "consent_ledger_limit_refusals_total",
            &[("limit", "failed_authentications")]
        ) >= 1.0
    );
    assert!(grew("consent_ledger_db_pool_wait_seconds_count", &[]) >= 1.0);
    // The gauges describe this app's database at the scrape.
    assert_eq!(value(&after, "consent_ledger_logs", &[]), 1.0);
    assert_eq!(value(&after, "consent_ledger_log_entries", &[]), size);
    assert_eq!(value(&after, "consent_ledger_unsigned_entries", &[]), 1.0);
    assert!(value(&after, "consent_ledger_checkpoint_lag_seconds", &[]) >= 0.0);
    assert_eq!(
        value(&after, "consent_ledger_dead_letters_waiting", &[]),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "consent_ledger_db_pool_connections",
            &[("state", "max")]
        ),
        8.0
    );
    // Nothing names a tenant, a number or a key.
    for secret in [
        "makro",
        NUMBER,
        &NUMBER[1..],
        WA_ID,
        PHONE_NUMBER_ID,
        &t.admin[..16],
    ] {
        assert!(!after.contains(secret), "{secret} is in the metrics");
    }
}

fn now_secs() -> i64 {
    crate::channels::now_secs()
}

/// A client chooses the method and the path: neither may make new series
/// without bound (methods outside the standard ones count as `other`,
/// unknown paths as `unmatched`).
#[both]
async fn clients_cannot_grow_the_label_sets() {
    let app = spawn_app().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url(&format!("/no/such/path/{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = scrape(&app).await;
    assert!(!text.contains("PROBE"), "a client's method became a label");
    assert!(
        !text.contains("/no/such/path"),
        "a client's path became a label"
    );
    assert!(
        value(
            &text,
            "consent_ledger_http_requests_total",
            &[("route", "unmatched"), ("method", "other")]
        ) >= 5.0
    );
}

/// Whoever reaches the API cannot read the metrics: `/metrics` is 404 there
/// (whatever the method), and served only on the metrics listener
/// (`CONSENT_LEDGER_METRICS_BIND`), which serves nothing else; `off` opens
/// no listener at all. Before, the API's port answered 200 with the live
/// counts to anyone.
#[both]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = spawn_app().await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let answer = TestApp::answer(
            app.client
                .request(method.clone(), app.url("/metrics"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} /metrics");
        assert_eq!(answer.content_type(), "application/problem+json");
        assert_eq!(answer.code(), "not_found");
    }
    let text = scrape(&app).await;
    assert!(
        text.contains("consent_ledger_http_requests_total"),
        "{text}"
    );
    // The metrics listener serves nothing of the API.
    for path in ["/healthz", "/v1/tenant", "/metrics/x"] {
        let response = app.client.get(app.metrics_url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let off = spawn_app_with(|args| args.metrics_bind = Some("off".into())).await;
    assert!(off.metrics_address.is_none());
    let answer = off.get("/metrics", "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
