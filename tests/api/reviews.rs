//! Ambiguous messages and their review (docs/decisions.md and docs/messages.md): a keyword
//! among other words and no phrase. Under `ambiguous_messages: opt_out`
//! (the default) it is an opt-out of the partial purposes, listed under
//! its seq; "not an opt-out" lifts it. Under `review` it records nothing,
//! checks answer `under_review`, and "opt-out" records it then. Settled
//! once; in the trail; erased with the group; counted in `/metrics`.

use crate::channels::*;
use crate::helpers::*;
use crate::vocabularies::whatsapp_text;
use reqwest::StatusCode;
use serde_json::{json, Value};

const NUMBER: &str = "+4915133000001";

async fn waiting(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let page = app.get("/v1/reviews", &t.admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body["reviews"].as_array().expect("reviews").clone()
}

async fn settle(app: &TestApp, t: &Tenant, id: &str, body: Value) -> Answer {
    app.post(&format!("/v1/reviews/{id}"), &t.admin, &body)
        .await
}

async fn trail_kinds(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let page = app.get("/v1/audit-events?limit=1000", &t.admin).await;
    page.body["audit_events"]
        .as_array()
        .expect("events")
        .clone()
}

#[both]
async fn under_opt_out_mode_an_ambiguous_message_opts_out_and_a_review_can_lift_it() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing", "utility"]))
        .await;
    whatsapp(&app, &whatsapp_text(NUMBER, 1, "Can I cancel my order?")).await;
    // The tenant's partial_opt_out (marketing) only.
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    assert_eq!(
        reason_for(&app, &t, NUMBER, "utility", "whatsapp").await,
        "allowed"
    );
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    let opt_out = answer.body["consent"]["seq"].as_u64().expect("seq");
    let items = waiting(&app, &t).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], opt_out.to_string());
    assert_eq!(items[0]["mode"], "opt_out");
    assert_eq!(items[0]["message"], "Can I cancel my order?");
    assert_eq!(items[0]["identity"], NUMBER);
    assert!(items[0]["received_at"].is_string());

    let id = opt_out.to_string();
    let settled = settle(
        &app,
        &t,
        &id,
        json!({"decision": "not_an_opt_out", "note": "asked about an order"}),
    )
    .await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
    assert_eq!(settled.body["mode"], "opt_out");
    assert_eq!(settled.body["decision"], "not_an_opt_out");
    let lift = settled.body["entry"]["seq"]
        .as_u64()
        .expect("a lift was appended");
    let e = entry(&app, &t, lift).await;
    assert_eq!(e["entry"]["type"], "opt_out_lifted");
    assert_eq!(e["entry"]["lifts"], opt_out);
    assert_eq!(e["entry"]["channel"], "api");
    let admin_key_id = t.admin.split('_').nth(1).expect("key id");
    assert!(
        e["entry"]["collector"]
            .as_str()
            .expect("collector")
            .contains(admin_key_id),
        "the ledger names who decided: {}",
        e["entry"]
    );
    assert_eq!(e["openings"]["evidence"]["body"]["reason"], "reviewed");
    assert_eq!(
        e["openings"]["evidence"]["body"]["note"],
        "asked about an order"
    );
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    assert!(waiting(&app, &t).await.is_empty());

    // Once.
    let again = settle(&app, &t, &id, json!({"decision": "opt_out"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "review_settled");
    let missing = settle(&app, &t, "rev_000000000000", json!({"decision": "opt_out"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let bad = settle(&app, &t, &id, json!({"decision": "maybe"})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);

    let kinds: Vec<Value> = trail_kinds(&app, &t).await;
    let settled_event = kinds
        .iter()
        .find(|e| e["kind"] == "review.settled")
        .expect("the settlement is in the trail");
    assert_eq!(settled_event["details"]["decision"], "not_an_opt_out");
    assert_eq!(settled_event["details"]["seq"], lift);
    let trail = serde_json::to_string(&kinds).unwrap();
    assert!(
        !trail.contains(NUMBER) && !trail.contains("cancel my order"),
        "{trail}"
    );
}

#[both]
async fn under_opt_out_mode_confirming_the_opt_out_records_nothing_more() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    whatsapp(
        &app,
        &whatsapp_text(NUMBER, 1, "stop sending me stuff about the sale"),
    )
    .await;
    whatsapp(&app, &whatsapp_text(NUMBER, 2, "end of discussion, stop")).await;
    let items = waiting(&app, &t).await;
    let size = log_size(&app, &t).await;
    let id = items.last().expect("an item")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let settled = settle(&app, &t, &id, json!({"decision": "opt_out"})).await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
    assert!(settled.body["entry"].is_null());
    assert_eq!(log_size(&app, &t).await, size);
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
}

#[both]
async fn under_review_mode_an_ambiguous_message_waits_and_the_review_decides() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let patched = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"ambiguous_messages": "review"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["ambiguous_messages"], "review");
    let other = "+4915133000002";
    for n in [NUMBER, other] {
        app.recorded_opt_in(&t, web_opt_in(n, "Makro", &["marketing", "utility"]))
            .await;
    }
    let size = log_size(&app, &t).await;
    let sent_at = now_secs() - 30;
    let mut message = whatsapp_text(NUMBER, 1, "Can I cancel the newsletter?");
    message["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] =
        json!(sent_at.to_string());
    whatsapp(&app, &message).await;
    whatsapp(
        &app,
        &whatsapp_text(other, 2, "can you stop by at 5 with the parcel?"),
    )
    .await;
    // Nothing recorded but the messages' windows; checks wait for a person.
    assert_eq!(log_size(&app, &t).await, size);
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(answer.body["reason"], "under_review", "{}", answer.body);
    assert_eq!(answer.body["allowed"], false);
    assert!(answer.body["consent"].is_null(), "{}", answer.body);
    assert_eq!(
        reason_for(&app, &t, NUMBER, "utility", "whatsapp").await,
        "allowed"
    );
    // A batch answers the same.
    let batch = app
        .post(
            "/v1/checks/batch",
            &t.sender,
            &json!({"checks": [{"number": NUMBER, "purpose": "marketing", "brand": "Makro"},
                               {"number": other, "purpose": "marketing", "brand": "Makro"}]}),
        )
        .await;
    assert_eq!(
        batch.body["decisions"][0]["reason"], "under_review",
        "{}",
        batch.body
    );
    assert_eq!(
        batch.body["decisions"][1]["reason"], "under_review",
        "{}",
        batch.body
    );

    let items = waiting(&app, &t).await;
    assert_eq!(items.len(), 2, "{items:?}");
    let id_of = |number: &str| {
        items
            .iter()
            .find(|i| i["identity"] == number)
            .expect("listed")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (first, second) = (id_of(NUMBER), id_of(other));
    for id in [&first, &second] {
        assert!(id.starts_with("rev_") && id.len() == 16, "{id}");
    }
    assert!(items.iter().all(|i| i["mode"] == "review"));

    // An opt-out after all: recorded now, captured when the message was.
    let settled = settle(
        &app,
        &t,
        &first,
        json!({"decision": "opt_out", "note": "wants no mail"}),
    )
    .await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
    let seq = settled.body["entry"]["seq"]
        .as_u64()
        .expect("an opt-out was appended");
    let e = entry(&app, &t, seq).await;
    assert_eq!(e["entry"]["type"], "opt_out");
    assert_eq!(e["entry"]["channel"], "whatsapp");
    assert_eq!(e["entry"]["purposes"], json!(["marketing"]));
    let captured =
        chrono::DateTime::parse_from_rfc3339(e["entry"]["captured_at"].as_str().unwrap())
            .expect("a timestamp");
    assert_eq!(captured.timestamp(), sent_at, "the message's own time");
    let admin_key_id = t.admin.split('_').nth(1).expect("key id");
    assert!(e["entry"]["collector"]
        .as_str()
        .unwrap()
        .contains(admin_key_id));
    let evidence = &e["openings"]["evidence"]["body"];
    assert_eq!(evidence["body"], "Can I cancel the newsletter?");
    assert_eq!(evidence["rule"], "ambiguous");
    assert_eq!(evidence["language"], "en");
    assert_eq!(evidence["note"], "wants no mail");
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );

    // Not an opt-out: nothing recorded, consent stands.
    let size = log_size(&app, &t).await;
    let settled = settle(&app, &t, &second, json!({"decision": "not_an_opt_out"})).await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
    assert!(settled.body["entry"].is_null());
    assert_eq!(log_size(&app, &t).await, size);
    assert_eq!(
        reason_for(&app, &t, other, "marketing", "whatsapp").await,
        "allowed"
    );
    assert!(waiting(&app, &t).await.is_empty());
    verify_db_passes(&app).await;
}

#[both]
async fn a_change_of_mode_leaves_listed_items_as_they_are() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.patch(
        "/v1/tenant",
        &t.admin,
        &json!({"ambiguous_messages": "review"}),
    )
    .await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    whatsapp(&app, &whatsapp_text(NUMBER, 1, "cancel my order please")).await;
    app.patch(
        "/v1/tenant",
        &t.admin,
        &json!({"ambiguous_messages": "opt_out"}),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "under_review"
    );
    let items = waiting(&app, &t).await;
    assert_eq!(items[0]["mode"], "review");
}

#[both]
async fn review_items_are_erased_with_their_group_and_counted_in_metrics() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    whatsapp(&app, &whatsapp_text(NUMBER, 1, "Can I cancel my order?")).await;
    assert_eq!(waiting(&app, &t).await.len(), 1);
    let metrics = app
        .client
        .get(app.metrics_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("consent_ledger_reviews_waiting 1"),
        "{metrics}"
    );
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    assert!(waiting(&app, &t).await.is_empty());
}

#[both]
async fn an_ambiguous_sms_from_a_number_the_tenant_does_not_hold_keeps_nothing() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.patch(
        "/v1/tenant",
        &t.admin,
        &json!({"ambiguous_messages": "review"}),
    )
    .await;
    let stranger = "+4915133000009";
    twilio(
        &app,
        &sms(
            stranger,
            "SM00000000000000000000000000000009",
            "can I cancel my order",
        ),
    )
    .await;
    assert!(waiting(&app, &t).await.is_empty());
    let query = app
        .post(
            "/v1/subjects/query",
            &t.auditor,
            &json!({"number": stranger}),
        )
        .await;
    assert_eq!(
        query.status,
        StatusCode::NOT_FOUND,
        "no subject keeps the number: {}",
        query.body
    );
}

/// An ambiguous message to a business number the tenant did not have yet
/// is kept; once the number is configured it opts out and is listed, as if
/// it had arrived then.
#[both]
async fn a_kept_ambiguous_message_is_listed_once_it_applies() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let foreign = whatsapp_text(NUMBER, 1, "Can I cancel my order?");
    whatsapp(&app, &to_other_number(foreign)).await;
    assert!(waiting(&app, &t).await.is_empty());
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    configure_other_number(&app, &t).await;
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(answer.body["reason"], "opted_out", "{}", answer.body);
    let seq = answer.body["consent"]["seq"].as_u64().expect("seq");
    let e = entry(&app, &t, seq).await;
    assert_eq!(e["openings"]["evidence"]["body"]["rule"], "ambiguous");
    assert!(e["openings"]["evidence"]["body"]["dead_letter_id"].is_string());
    let items = waiting(&app, &t).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], seq.to_string());
    assert_eq!(items[0]["message"], "Can I cancel my order?");
}
