//! Every decision reason but `unconfirmed` (forms) and suppression
//! (erasure), the event order, expiry and the window.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

#[both]
async fn allowed_names_the_governing_opt_in() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let seq = app
        .recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let d = &answer.body;
    assert_eq!(d["allowed"], true);
    assert_eq!(d["reason"], "allowed");
    assert_eq!(d["number"], NUMBER);
    assert_eq!(d["brand"], "Makro");
    assert_eq!(d["channel"], "whatsapp");
    assert_eq!(d["purpose"], "marketing");
    assert_eq!(d["template_required"], true);
    assert_eq!(d["session_reply_allowed"], false);
    assert_eq!(
        d["window"],
        json!({"open": false, "closes_at": null, "business_phone_number_id": null})
    );
    assert_eq!(d["consent"]["type"], "opt_in");
    assert_eq!(d["consent"]["seq"], seq);
    assert_eq!(d["consent"]["channel"], "web");
    assert_eq!(d["consent"]["company_name_shown"], "Makro");
}

#[both]
async fn no_opt_in_for_an_unknown_number() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert_eq!(d.body["reason"], "no_opt_in");
    assert_eq!(d.body["allowed"], false);
    assert_eq!(d.body["consent"], serde_json::Value::Null);
}

#[both]
async fn an_opt_out_counts_from_the_very_next_request_for_every_brand() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.add_brand(&t, "Metro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Metro", &["marketing"]))
        .await;
    let out = app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    for brand in ["Makro", "Metro"] {
        let d = app
            .check(
                &t,
                json!({"number": NUMBER, "purpose": "marketing", "brand": brand}),
            )
            .await;
        assert_eq!(d.body["reason"], "opted_out", "{brand}");
        assert_eq!(d.body["consent"]["type"], "opt_out");
        assert_eq!(d.body["consent"]["seq"], out);
        assert_eq!(d.body["consent"]["channel"], "api");
    }
}

#[both]
async fn a_backfilled_older_opt_in_never_overrides_a_newer_opt_out() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    // Signed on paper 40 days ago, imported now (higher seq, older captured_at).
    let mut paper = json!({
        "number": NUMBER,
        "channel": "paper",
        "company_name_shown": "Makro",
        "consent_text": "I agree to receive offers from Makro by WhatsApp.",
        "purposes": ["marketing"],
        "captured_at": days_ago(40),
        "backfill": true,
        "evidence": {"document_sha256": "e".repeat(64), "signer_name": "J. Doe", "signed_on": date_at(-40 * 86_400), "collected_by": "store-0042"}
    });
    let imported = app.post("/v1/opt-ins", &t.admin, &paper).await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(
        app.reason(&t, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "opted_out"
    );
    // A fresh opt-in after the opt-out counts again.
    paper["captured_at"] = json!(at(5));
    paper["backfill"] = json!(false);
    paper["evidence"]["signed_on"] = json!(date_at(5));
    let fresh = app.opt_in(&t, paper).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    assert_eq!(
        app.reason(&t, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "allowed"
    );
}

#[both]
async fn an_opt_out_wins_a_tie() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let moment = at(-30);
    let mut out = api_opt_out(NUMBER);
    out["captured_at"] = json!(moment);
    app.recorded_opt_out(&t, out).await;
    let mut opt_in = web_opt_in(NUMBER, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(moment);
    app.recorded_opt_in(&t, opt_in).await;
    assert_eq!(
        app.reason(&t, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "opted_out"
    );
}

#[both]
async fn coverage_reasons() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.add_brand(&t, "Metro").await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let ask = |purpose: &str, brand: &str, channel: &str| json!({"number": NUMBER, "purpose": purpose, "brand": brand, "channel": channel});
    assert_eq!(
        app.reason(&t, ask("utility", "Makro", "whatsapp")).await,
        "purpose_not_covered"
    );
    assert_eq!(
        app.reason(&t, ask("marketing", "Makro", "sms")).await,
        "channel_not_covered"
    );
    let mismatch = app.check(&t, ask("marketing", "Metro", "whatsapp")).await;
    assert_eq!(mismatch.body["reason"], "brand_mismatch");
    assert_eq!(mismatch.body["brand"], "Metro");
    assert_eq!(mismatch.body["consent"]["company_name_shown"], "Makro");
    // A partial opt-out of SMS leaves WhatsApp allowed.
    let mut sms_out = api_opt_out(NUMBER);
    sms_out["message_channels"] = json!(["sms"]);
    app.recorded_opt_out(&t, sms_out).await;
    assert_eq!(
        app.reason(&t, ask("marketing", "Makro", "whatsapp")).await,
        "allowed"
    );
}

#[both]
async fn expired_after_max_consent_age_days() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let set = app
        .patch("/v1/tenant", &t.admin, &json!({"max_consent_age_days": 10}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let mut old = web_opt_in(NUMBER, "Makro", &["marketing"]);
    old["captured_at"] = json!(days_ago(11));
    old["backfill"] = json!(true);
    let seq = app.post("/v1/opt-ins", &t.admin, &old).await.body["seq"]
        .as_u64()
        .unwrap();
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert_eq!(d.body["reason"], "expired");
    assert_eq!(d.body["allowed"], false);
    assert_eq!(d.body["consent"]["seq"], seq);
    // Within the age it is allowed; clearing the setting ends expiry.
    app.patch("/v1/tenant", &t.admin, &json!({"max_consent_age_days": 12}))
        .await;
    assert_eq!(
        app.reason(&t, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "allowed"
    );
    app.patch("/v1/tenant", &t.admin, &json!({"max_consent_age_days": 10}))
        .await;
    app.patch(
        "/v1/tenant",
        &t.admin,
        &json!({"max_consent_age_days": null}),
    )
    .await;
    assert_eq!(
        app.reason(&t, json!({"number": NUMBER, "purpose": "marketing"}))
            .await,
        "allowed"
    );
}

#[both]
async fn brands_resolve_case_insensitively_and_retired_ones_keep_counting() {
    let app = spawn_app().await;
    let t = app.tenant("cafe", "Café Zürich").await;
    let mut opt_in = web_opt_in(NUMBER, "Café Zürich", &["marketing"]);
    opt_in["consent_text"] = json!("Ja, Angebote vom CAFÉ ZÜRICH über WhatsApp.");
    app.recorded_opt_in(&t, opt_in.clone()).await;
    // Only one active brand: it may be omitted.
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert_eq!(d.body["brand"], "Café Zürich");
    // Decomposed and upper-cased, it still resolves, echoed in stored spelling.
    let d = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "CAFE\u{301} ZÜRICH"}),
        )
        .await;
    assert_eq!(d.body["reason"], "allowed");
    assert_eq!(d.body["brand"], "Café Zürich");
    app.add_brand(&t, "Café Bern").await;
    let omitted = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing"}))
        .await;
    assert_eq!(omitted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(omitted.code(), "brand_required");
    let unknown = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Nope"}),
        )
        .await;
    assert_eq!(unknown.code(), "unknown_brand");
    let retired = app
        .post(
            "/v1/brands/caf%C3%A9%20z%C3%BCrich/retire",
            &t.admin,
            &json!({}),
        )
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.body);
    assert_eq!(retired.body["status"], "retired");
    let d = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Café Zürich"}),
        )
        .await;
    assert_eq!(d.body["reason"], "allowed");
    let refused = app.opt_in(&t, opt_in).await;
    assert_eq!(refused.code(), "brand_retired");
}

#[both]
async fn the_window_opens_per_business_number_and_closes_after_24_hours() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    // The person wrote first: a free-form reply is allowed without opt-in.
    let opened = app
        .post(
            "/v1/interactions",
            &t.sender,
            &json!({"number": NUMBER, "business_phone_number_id": "106540352242922", "received_at": at(-3600)}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    assert_eq!(opened.body["number"], NUMBER);
    assert_eq!(opened.body["window"]["open"], true);
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing", "business_phone_number_id": "106540352242922"}))
        .await;
    assert_eq!(d.body["reason"], "no_opt_in");
    assert_eq!(d.body["template_required"], false);
    assert_eq!(d.body["session_reply_allowed"], true);
    assert_eq!(d.body["window"]["open"], true);
    assert_eq!(
        d.body["window"]["business_phone_number_id"],
        "106540352242922"
    );
    let closes = d.body["window"]["closes_at"].as_str().unwrap().to_owned();
    assert_eq!(opened.body["window"]["closes_at"], closes.as_str());
    let closes_at = chrono::DateTime::parse_from_rfc3339(&closes).unwrap();
    let minutes_left = (closes_at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!(
        (22 * 60..=23 * 60).contains(&minutes_left),
        "24 h after a message of an hour ago, got {minutes_left} minutes"
    );
    // Another business number has no window.
    let other = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "business_phone_number_id": "999"}),
        )
        .await;
    assert_eq!(other.body["window"]["open"], false);
    assert_eq!(other.body["session_reply_allowed"], false);
    // SMS never has a window.
    let sms = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "channel": "sms"}),
        )
        .await;
    assert_eq!(
        sms.body["window"],
        json!({"open": false, "closes_at": null, "business_phone_number_id": null})
    );
    assert_eq!(sms.body["template_required"], false);
    assert_eq!(sms.body["session_reply_allowed"], false);
    // An opt-out forbids even the session reply.
    app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "marketing", "business_phone_number_id": "106540352242922"}))
        .await;
    assert_eq!(d.body["reason"], "opted_out");
    assert_eq!(d.body["window"]["open"], true);
    assert_eq!(d.body["session_reply_allowed"], false);
}

#[both]
async fn a_window_closes_24_hours_after_the_message() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    // A message from 24 hours minus two seconds ago: open for two more seconds.
    let received = app.at(-86_400 + 2);
    let opened = app
        .post(
            "/v1/interactions",
            &t.collector,
            &json!({"number": NUMBER, "received_at": received}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    assert_eq!(opened.body["window"]["closes_at"], app.at(2));
    let check = json!({"number": NUMBER, "purpose": "utility"});
    app.clock.advance(1_999);
    assert_eq!(
        app.check(&t, check.clone()).await.body["window"]["open"],
        true
    );
    app.clock.advance(1);
    let d = app.check(&t, check).await;
    assert_eq!(d.body["window"]["open"], false);
    assert_eq!(d.body["window"]["closes_at"], serde_json::Value::Null);
    assert_eq!(d.body["template_required"], true);
}

/// docs/recording.md: `received_at` is not in the future (no tolerance) and
/// not older than 24 hours; each refusal names the field in its code.
#[both]
async fn an_interaction_is_neither_from_the_future_nor_older_than_a_day() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let interaction = |received_at: String| {
        let app = &app;
        let t = &t;
        async move {
            app.post(
                "/v1/interactions",
                &t.collector,
                &json!({"number": NUMBER, "received_at": received_at}),
            )
            .await
        }
    };
    let ahead = interaction(app.clock.now().plus_millis(1).to_string()).await;
    assert_eq!(
        ahead.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        ahead.body
    );
    assert_eq!(ahead.code(), "received_at_in_future");
    assert_eq!(
        ahead.field_code("received_at").as_deref(),
        Some("in_future")
    );
    let stale = interaction(app.clock.now().plus_millis(-86_400_001).to_string()).await;
    assert_eq!(
        stale.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        stale.body
    );
    assert_eq!(stale.code(), "received_at_too_old");
    assert_eq!(stale.field_code("received_at").as_deref(), Some("too_old"));
    // The edges themselves are accepted: now, and exactly 24 hours ago.
    let now = interaction(app.at(0)).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.body);
    assert_eq!(now.body["window"]["closes_at"], app.at(86_400));
    let oldest = interaction(app.at(-86_400)).await;
    assert_eq!(oldest.status, StatusCode::OK, "{}", oldest.body);
    let problem = app.get("/problems/received_at_in_future", &t.admin).await;
    assert_eq!(problem.status, StatusCode::OK);
}

#[both]
async fn an_interaction_without_an_id_counts_for_every_business_number() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.post("/v1/interactions", &t.sender, &json!({"number": NUMBER}))
        .await;
    let d = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "utility", "business_phone_number_id": "42"}),
        )
        .await;
    assert_eq!(d.body["window"]["open"], true);
    assert_eq!(d.body["session_reply_allowed"], true);
    // Two business numbers seen and none named: the latest window, but no session reply.
    app.post(
        "/v1/interactions",
        &t.sender,
        &json!({"number": NUMBER, "business_phone_number_id": "A"}),
    )
    .await;
    app.post(
        "/v1/interactions",
        &t.sender,
        &json!({"number": NUMBER, "business_phone_number_id": "B"}),
    )
    .await;
    let d = app
        .check(&t, json!({"number": NUMBER, "purpose": "utility"}))
        .await;
    assert_eq!(d.body["window"]["open"], true);
    assert_eq!(d.body["session_reply_allowed"], false);
}
