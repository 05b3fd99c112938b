//! `Idempotency-Key`: a retry records once and replays the first answer.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_retried_opt_in_records_once() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    let key = [("Idempotency-Key", "form-7f3a-1")];
    let first = app
        .post_with("/v1/opt-ins", &t.collector, &body, &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = app
        .post_with("/v1/opt-ins", &t.collector, &body, &key)
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, first.body);
    // Only one entry exists.
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 1);
    // The same key with another body is refused and records nothing.
    let mut changed = body.clone();
    changed["purposes"] = json!(["utility"]);
    let reused = app
        .post_with("/v1/opt-ins", &t.collector, &changed, &key)
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "idempotency_key_reused");
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 1);
    // Keys are scoped per API key and per route.
    let other_key = app.new_key(&t.admin, &["collector"]).await;
    let other = app.post_with("/v1/opt-ins", &other_key, &body, &key).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert!(other.headers.get("idempotent-replayed").is_none());
    let out = app
        .post_with("/v1/opt-outs", &t.collector, &api_opt_out(NUMBER), &key)
        .await;
    assert_eq!(out.status, StatusCode::CREATED);
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 3);
}

#[tokio::test]
async fn a_failed_request_does_not_burn_its_key() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = [("Idempotency-Key", "retry-after-fix")];
    let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    body["company_name_shown"] = json!("Metro");
    body["consent_text"] = json!("Offers from Metro.");
    let failed = app
        .post_with("/v1/opt-ins", &t.collector, &body, &key)
        .await;
    assert_eq!(failed.code(), "unknown_brand");
    app.add_brand(&t, "Metro").await;
    let fixed = app
        .post_with("/v1/opt-ins", &t.collector, &body, &key)
        .await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.body);
    assert!(fixed.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn opt_outs_and_interactions_replay_too() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let key = [("Idempotency-Key", "stop-1")];
    let body = api_opt_out(NUMBER);
    let first = app
        .post_with("/v1/opt-outs", &t.collector, &body, &key)
        .await;
    let again = app
        .post_with("/v1/opt-outs", &t.collector, &body, &key)
        .await;
    assert_eq!(first.body, again.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    let interaction = json!({"number": NUMBER, "received_at": at(-60)});
    let first = app
        .post_with("/v1/interactions", &t.sender, &interaction, &key)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let again = app
        .post_with("/v1/interactions", &t.sender, &interaction, &key)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(first.body, again.body);
    let long = "k".repeat(256);
    let refused = app
        .post_with(
            "/v1/opt-outs",
            &t.collector,
            &body,
            &[("Idempotency-Key", long.as_str())],
        )
        .await;
    assert_eq!(refused.code(), "invalid_idempotency_key");
}

#[tokio::test]
async fn concurrent_retries_record_once() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/v1/opt-ins");
        let key = t.collector.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "burst")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::CREATED));
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 1);
}
