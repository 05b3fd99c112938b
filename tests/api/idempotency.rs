//! `Idempotency-Key`: a retry records once and replays the first answer.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[both(pgbouncer)]
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

#[both(pgbouncer)]
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

#[both(pgbouncer)]
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

#[both(pgbouncer)]
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

/// The `updated_at` of the request's idempotency row, once it exists.
fn key_taken_at(app: &TestApp, key: &str) -> Option<i64> {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::idempotency_keys as idem;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl};
    let mut conn = establish(&app.database_target()).unwrap();
    idem::table
        .filter(idem::idempotency_key.eq(key))
        .select(idem::updated_at)
        .first(&mut conn)
        .optional()
        .unwrap()
}

/// Waits (bounded) until the request holding `key` took it at `at`.
async fn until_key_taken_at(app: &TestApp, key: &str, at: i64) {
    for _ in 0..200 {
        if key_taken_at(app, key) == Some(at) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no request took the key {key} at {at}");
}

/// docs/api.md: an `in_progress` key older than 60 s is taken over by
/// a retry. The stalled original must then roll back (one entry for one
/// key) and answer as the key stands: 409 while the retry runs.
#[both(pgbouncer)]
async fn a_request_held_past_the_takeover_records_nothing() {
    use consent_ledger::domain::time::{Clock, Timestamp};
    use consent_ledger::startup::Hooks;
    use std::sync::Arc;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let hooks = Hooks {
        clock: Clock::manual(Timestamp::now()),
        write_gate: Some(gate.clone()),
        ..Hooks::default()
    };
    let app = spawn_app_hooked(|_| {}, hooks).await;
    let t = app.tenant("makro", "Makro").await;
    let body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    let send = |app: &TestApp| {
        let request = app
            .client
            .post(app.url("/v1/opt-ins"))
            .bearer_auth(&t.collector)
            .header("Idempotency-Key", "held")
            .json(&body);
        tokio::spawn(async move { TestApp::answer(request.send().await.unwrap()).await })
    };
    // The original takes the key and stalls before it writes.
    let original = send(&app);
    until_key_taken_at(&app, "held", app.clock.now().millis()).await;
    // A minute later its retry takes the key over, and stalls too.
    app.clock.advance(61_000);
    let retry = send(&app);
    until_key_taken_at(&app, "held", app.clock.now().millis()).await;
    // The original goes on first (the gate is first come, first served).
    gate.add_permits(1);
    let original = original.await.unwrap();
    assert_eq!(original.status, StatusCode::CONFLICT, "{}", original.body);
    assert_eq!(original.code(), "idempotency_in_progress");
    let (_, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert_eq!(note.lines().nth(1), Some("0"), "the original wrote nothing");
    gate.add_permits(1);
    let retry = retry.await.unwrap();
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_eq!(retry.body["seq"], 0);
    // Asked again, the key answers the retry's entry: one entry for one key.
    // (A permit, so that a wrong second write would answer instead of hang.)
    gate.add_permits(1);
    let again = send(&app).await.unwrap();
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, retry.body);
    assert_eq!(app.get("/v1/tenant", &t.admin).await.body["tree_size"], 1);
}

/// How many idempotency keys are stored, and their stored answers.
fn stored_answers(app: &TestApp) -> Vec<Option<String>> {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::idempotency_keys as idem;
    use diesel::{QueryDsl, RunQueryDsl};
    let mut conn = establish(&app.database_target()).unwrap();
    idem::table
        .select(idem::response_body)
        .load(&mut conn)
        .unwrap()
}

/// docs/api.md: keys are kept 24 hours, and then forgotten by the
/// housekeeping job even if they never come back.
#[both(pgbouncer)]
async fn idempotency_keys_are_purged_after_a_day() {
    use consent_ledger::domain::time::{Clock, Timestamp};
    use consent_ledger::startup::Hooks;
    let hooks = Hooks {
        clock: Clock::manual(Timestamp::now()),
        housekeeping_interval: Some(std::time::Duration::from_millis(50)),
        ..Hooks::default()
    };
    let app = spawn_app_hooked(|_| {}, hooks).await;
    let t = app.tenant("makro", "Makro").await;
    let recorded = app
        .post_with(
            "/v1/opt-ins",
            &t.collector,
            &web_opt_in(NUMBER, "Makro", &["marketing"]),
            &[("Idempotency-Key", "day-old")],
        )
        .await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
    app.clock.advance(24 * 3600 * 1000 - 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(stored_answers(&app).len(), 1, "kept for 24 hours");
    app.clock.advance(1);
    for _ in 0..200 {
        if stored_answers(&app).is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the day-old idempotency key was never purged");
}

/// An interaction's stored answer keeps the window, not the number; its
/// replay still answers the number asked.
#[both(pgbouncer)]
async fn an_interactions_stored_answer_keeps_no_number() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let interaction = json!({"number": "0151 12345678", "region": "DE", "received_at": at(-60)});
    let key = [("Idempotency-Key", "window-1")];
    let first = app
        .post_with("/v1/interactions", &t.sender, &interaction, &key)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["number"], NUMBER);
    let stored = stored_answers(&app);
    assert_eq!(stored.len(), 1);
    let stored = stored[0].clone().expect("an answer");
    assert!(!stored.contains("12345678"), "{stored}");
    assert!(stored.contains("closes_at"), "{stored}");
    let again = app
        .post_with("/v1/interactions", &t.sender, &interaction, &key)
        .await;
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.body, first.body);
}
