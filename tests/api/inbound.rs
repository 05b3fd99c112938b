//! What messages mean once a webhook is verified (docs/messages.md):
//! keywords and phrases, opt-ins by text and button, lifts, retries, the
//! 24-hour window, WhatsApp's own marketing preference, canonical numbers
//! and dead letters. Settings and signatures: `channels.rs`.

use crate::channels::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[both]
async fn stop_words_and_phrases_opt_out() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let numbers = [
        "+4915112345671",
        "+4915112345672",
        "+4915112345673",
        "+4915112345674",
    ];
    for n in numbers {
        app.recorded_opt_in(&t, web_opt_in(n, "Makro", &["marketing", "utility"]))
            .await;
    }
    let now = now_secs();
    whatsapp(&app, &text("4915112345671", "wamid.a", "STOP", false, now)).await;
    whatsapp(&app, &text("4915112345672", "wamid.b", "stop.", false, now)).await;
    whatsapp(
        &app,
        &text(
            "4915112345673",
            "wamid.c",
            "please stop texting me",
            false,
            now,
        ),
    )
    .await;
    whatsapp(&app, &text("4915112345674", "wamid.d", "Baja", false, now)).await;
    for full in [numbers[0], numbers[1], numbers[3]] {
        assert_eq!(
            reason_for(&app, &t, full, "marketing", "whatsapp").await,
            "opted_out"
        );
        assert_eq!(
            reason_for(&app, &t, full, "utility", "whatsapp").await,
            "opted_out"
        );
    }
    // A partial opt-out withdraws the tenant's partial_opt_out purposes only.
    assert_eq!(
        reason_for(&app, &t, numbers[2], "marketing", "whatsapp").await,
        "opted_out"
    );
    assert_eq!(
        reason_for(&app, &t, numbers[2], "utility", "whatsapp").await,
        "allowed"
    );
    let answer = app
        .check(
            &t,
            json!({"number": numbers[0], "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    let seq = answer.body["consent"]["seq"].as_u64().expect("seq");
    let e = entry(&app, &t, seq).await;
    assert_eq!(e["entry"]["type"], "opt_out");
    assert_eq!(e["entry"]["collector"], "webhook:whatsapp");
    assert_eq!(e["entry"]["channel"], "whatsapp");
    assert_eq!(
        e["entry"]["purposes"],
        json!(["authentication", "marketing", "utility"])
    );
    assert_eq!(e["entry"]["message_channels"], json!(["sms", "whatsapp"]));
    assert_eq!(
        e["entry"]["captured_at"],
        chrono::DateTime::from_timestamp(now, 0)
            .expect("time")
            .format("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string()
    );
}

#[both]
async fn one_word_whatsapp_opt_ins_count_only_as_replies() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    whatsapp(&app, &text("4915112345671", "wamid.1", "join", false, now)).await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345671", "marketing", "whatsapp").await,
        "no_opt_in"
    );
    whatsapp(&app, &text("4915112345672", "wamid.2", "Join!", true, now)).await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345672", "marketing", "whatsapp").await,
        "allowed"
    );
    whatsapp(
        &app,
        &text("4915112345673", "wamid.3", "join makro", false, now),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345673", "marketing", "whatsapp").await,
        "allowed"
    );
    // The opt-in the webhook recorded: the match's prompt, brand and purposes.
    let answer = app
        .check(
            &t,
            json!({"number": "+4915112345673", "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    let seq = answer.body["consent"]["seq"].as_u64().expect("seq");
    let e = entry(&app, &t, seq).await;
    assert_eq!(e["entry"]["type"], "opt_in");
    assert_eq!(e["entry"]["company_name_shown"], "Makro");
    assert_eq!(e["entry"]["message_channels"], json!(["whatsapp"]));
    assert_eq!(e["entry"]["collector"], "webhook:whatsapp");
    assert!(e["entry"].get("language").is_none());
    assert_eq!(e["openings"]["evidence"]["body"]["body"], "join makro");
    assert_eq!(
        e["openings"]["evidence"]["body"]["business_phone_number_id"],
        PHONE_NUMBER_ID
    );
    // On SMS a one-word keyword counts.
    twilio(
        &app,
        &sms(
            "+4915112345674",
            "SM00000000000000000000000000000001",
            "JOIN",
        ),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345674", "marketing", "sms").await,
        "allowed"
    );
    assert_eq!(
        reason_for(&app, &t, "+4915112345674", "marketing", "whatsapp").await,
        "channel_not_covered"
    );
}

#[both]
async fn buttons_and_interactive_replies_opt_in_by_payload() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    let mut button = fixture("button", now);
    button["entry"][0]["changes"][0]["value"]["messages"][0]["button"]["payload"] =
        json!("OPTIN_UTILITY");
    whatsapp(&app, &button).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "utility", "whatsapp").await,
        "allowed"
    );
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "purpose_not_covered"
    );
    whatsapp(&app, &fixture("interactive", now)).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    // A payload that differs in case matches nothing.
    let mut other = fixture("button", now);
    let message = &mut other["entry"][0]["changes"][0]["value"]["messages"][0];
    message["from"] = json!("4915112345679");
    message["id"] = json!("wamid.case");
    message["button"]["payload"] = json!("optin_utility");
    other["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = json!("4915112345679");
    whatsapp(&app, &other).await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345679", "utility", "whatsapp").await,
        "no_opt_in"
    );
}

#[both]
async fn retries_record_once() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let size = log_size(&app, &t).await;
    let stop = text("4915112345678", "wamid.retry", "STOP", false, now_secs());
    whatsapp(&app, &stop).await;
    whatsapp(&app, &stop).await;
    assert_eq!(log_size(&app, &t).await, size + 1);
    let params = sms(
        "+4915112345679",
        "SM0000000000000000000000000000dup1",
        "STOP",
    );
    twilio(&app, &params).await;
    twilio(&app, &params).await;
    assert_eq!(log_size(&app, &t).await, size + 2);
    // WhatsApp's marketing stop is deduplicated on (identity, value,
    // timestamp), not on the bytes: a second delivery that differs in
    // everything else records nothing; another time is another stop.
    let at = now_secs();
    let prefs = fixture("user_preferences", at);
    whatsapp(&app, &prefs).await;
    let mut again = prefs.clone();
    let value = &mut again["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["profile"]["name"] = json!("L. Schmidt");
    value["user_preferences"][0]["detail"] = json!("Stopped from the chat menu");
    value["metadata"]["display_phone_number"] = json!("15550783882");
    assert_ne!(again, prefs);
    whatsapp(&app, &again).await;
    assert_eq!(log_size(&app, &t).await, size + 3);
    let later = fixture("user_preferences", at + 1);
    whatsapp(&app, &later).await;
    assert_eq!(log_size(&app, &t).await, size + 4);
}

#[both]
async fn start_lifts_keyword_opt_outs_but_never_api_ones() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let now = now_secs();
    whatsapp(
        &app,
        &text("4915112345678", "wamid.s1", "STOP", false, now - 60),
    )
    .await;
    whatsapp(
        &app,
        &text(
            "4915112345678",
            "wamid.s2",
            "stop texting me",
            false,
            now - 50,
        ),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    // An SMS START lifts nothing recorded on WhatsApp.
    twilio(
        &app,
        &sms(NUMBER, "SM000000000000000000000000000start1", "START"),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    let size = log_size(&app, &t).await;
    whatsapp(
        &app,
        &text("4915112345678", "wamid.s3", "Start", false, now - 40),
    )
    .await;
    assert_eq!(
        log_size(&app, &t).await,
        size + 2,
        "one opt_out_lifted per keyword opt-out"
    );
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    let lift = entry(&app, &t, size).await;
    assert_eq!(lift["entry"]["type"], "opt_out_lifted");
    assert_eq!(lift["entry"]["channel"], "whatsapp");
    assert!(lift["entry"]["lifts"].as_u64().expect("lifts") < size);
    // An opt-out through the API stays.
    app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    whatsapp(
        &app,
        &text("4915112345678", "wamid.s4", "UNSTOP", false, now),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    // The log with its lifts verifies.
    let (code, out, err) = run_cli(&["verify-db"], Some(&app.data_dir()));
    assert_eq!(code, 0, "{out}{err}");
}

#[both]
async fn user_messages_open_the_window_statuses_and_reactions_do_not() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let window = |number: &'static str| {
        let app = &app;
        let t = &t;
        async move {
            let answer = app
                .check(
                    t,
                    json!({"number": number, "purpose": "utility", "brand": "Makro",
                                 "business_phone_number_id": PHONE_NUMBER_ID}),
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            answer.body["window"].clone()
        }
    };
    let at = now_secs() - 3600;
    whatsapp(&app, &fixture("status", at)).await;
    whatsapp(&app, &fixture("reaction", at)).await;
    assert_eq!(window(NUMBER).await["open"], false);
    // An image (with "STOP" as its caption: not a text) opens the window from its own timestamp.
    whatsapp(&app, &fixture("image", at)).await;
    let w = window(NUMBER).await;
    assert_eq!(w["open"], true);
    let closes = chrono::DateTime::from_timestamp(at + 24 * 3600, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    assert_eq!(w["closes_at"], closes);
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "no_opt_in"
    );
    // SMS opens no WhatsApp window.
    twilio(
        &app,
        &sms(
            "+4915112345679",
            "SM0000000000000000000000000000win1",
            "hello",
        ),
    )
    .await;
    assert_eq!(window("+4915112345679").await["open"], false);
    // Not for any business number: no window at all was stored for it.
    assert_eq!(stored_windows(&app, "+4915112345679"), 0);
    assert_eq!(stored_windows(&app, NUMBER), 1);
}

/// How many customer-service windows are stored for a number (any id, on
/// any of its subjects).
fn stored_windows(app: &TestApp, number: &str) -> i64 {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::{subjects, windows};
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    let mut conn = establish(&app.database_target()).unwrap();
    windows::table
        .inner_join(subjects::table)
        .filter(subjects::identity.eq(number))
        .count()
        .get_result(&mut conn)
        .unwrap()
}

#[both]
async fn whatsapp_marketing_stop_and_resume() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(
        &t,
        json!({"number": NUMBER, "channel": "web", "company_name_shown": "Makro",
               "consent_text": "Yes, Makro may message me.", "purposes": ["marketing"],
               "message_channels": ["whatsapp", "sms"], "captured_at": at(-3600),
               "evidence": {"page_url": "https://makro.example/join", "ip": "203.0.113.7",
                            "user_agent": "Mozilla/5.0"}}),
    )
    .await;
    let now = now_secs();
    whatsapp(&app, &fixture("user_preferences", now - 30)).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "sms").await,
        "allowed"
    );
    // START does not lift WhatsApp's own stop; resume does.
    whatsapp(
        &app,
        &text("4915112345678", "wamid.p1", "START", false, now - 20),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    let mut resume = fixture("user_preferences", now - 10);
    resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]["value"] = json!("resume");
    whatsapp(&app, &resume).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
}

#[both]
async fn a_brazilian_wa_id_without_the_ninth_digit_is_the_canonical_number() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let mut message = fixture("brazil_text", now_secs());
    message["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = json!("JOIN MAKRO");
    whatsapp(&app, &message).await;
    assert_eq!(
        reason_for(&app, &t, "+5511999887766", "marketing", "whatsapp").await,
        "allowed"
    );
    let mut stop = text("5511999887766", "wamid.br2", "STOP", false, now_secs());
    stop["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = json!("João Silva");
    whatsapp(&app, &stop).await;
    assert_eq!(
        reason_for(&app, &t, "+5511999887766", "marketing", "whatsapp").await,
        "opted_out"
    );
}

#[both]
async fn unresolvable_opt_outs_become_dead_letters() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    // No identity that parses (a user id that is not one, no number): kept.
    whatsapp(&app, &unreadable_stop(now - 30)).await;
    // A business number that is not the tenant's: kept.
    let foreign = text("4915112345678", "wamid.foreign", "STOP", false, now - 20);
    whatsapp(&app, &to_other_number(foreign)).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "no_opt_in"
    );
    let answer = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let letters = answer.body["dead_letters"].as_array().expect("array");
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(reasons, vec!["unknown_sender", "unknown_phone_number_id"]);
    assert_eq!(letters[1]["phone_number_id"], OTHER_PHONE_NUMBER_ID);
    assert_eq!(letters[0]["resolved_at"], Value::Null);
    assert!(
        !answer.body.to_string().contains("4915112345678"),
        "no number in the list of dead letters"
    );
    assert_eq!(
        app.get("/v1/dead-letters", &t.auditor).await.status,
        StatusCode::FORBIDDEN
    );
    let page = app.get("/v1/dead-letters?limit=1", &t.admin).await;
    assert_eq!(page.body["dead_letters"].as_array().map(Vec::len), Some(1));
    let next = page.body["next_after"].as_i64().expect("next page");
    let rest = app
        .get(&format!("/v1/dead-letters?after={next}"), &t.admin)
        .await;
    assert_eq!(
        rest.body["dead_letters"][0]["reason"],
        "unknown_phone_number_id"
    );
    assert_eq!(rest.body["next_after"], Value::Null);
}

/// An admin reads what a dead letter held (docs/identities.md); nobody else,
/// and no other tenant, does.
#[both]
async fn an_admin_reads_a_dead_letter_unsealed() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    whatsapp(&app, &unreadable_stop(now - 30)).await;
    let list = app.get("/v1/dead-letters", &t.admin).await;
    let id = list.body["dead_letters"][0]["id"].as_i64().expect("id");
    let letter = app.get(&format!("/v1/dead-letters/{id}"), &t.admin).await;
    assert_eq!(letter.status, StatusCode::OK, "{}", letter.body);
    assert_eq!(letter.body["id"], id);
    assert_eq!(letter.body["reason"], "unknown_sender");
    assert_eq!(letter.body["provider"], "whatsapp");
    let payload = &letter.body["payload"];
    assert_eq!(payload["kind"], "message");
    assert_eq!(payload["user_id"], Value::Null, "not a user id");
    assert_eq!(payload["business"], PHONE_NUMBER_ID);
    assert_eq!(
        payload["content"],
        json!({"type": "text", "body": "STOP", "reply_to": null})
    );
    let sent_at = chrono::DateTime::from_timestamp(now - 30, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    assert_eq!(payload["captured_at"], sent_at);
    assert_eq!(
        payload["opt_out"],
        json!(["marketing", "utility", "authentication"])
    );
    for key in [&t.auditor, &t.collector, &t.sender] {
        let refused = app.get(&format!("/v1/dead-letters/{id}"), key).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    let missing = app.get("/v1/dead-letters/999999", &t.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/v1/dead-letters/abc", &t.admin).await.status,
        StatusCode::NOT_FOUND
    );
    let other = app.tenant("metro", "Metro").await;
    let theirs = app
        .get(&format!("/v1/dead-letters/{id}"), &other.admin)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

/// A STOP sent to a business number the tenant did not have yet is
/// applied, with its own time, once the number is configured.
#[both]
async fn a_kept_opt_out_applies_once_its_business_number_is_configured() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let foreign = text("4915112345678", "wamid.foreign", "STOP", false, now - 20);
    whatsapp(&app, &to_other_number(foreign)).await;
    // A plain message to that number is kept too, but holds no opt-out.
    let hello = text("4915112345679", "wamid.hello", "hello", false, now - 15);
    whatsapp(&app, &to_other_number(hello)).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    let body = configure_other_number(&app, &t).await;
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(answer.body["reason"], "opted_out", "{}", answer.body);
    let seq = answer.body["consent"]["seq"].as_u64().expect("seq");
    let e = entry(&app, &t, seq).await;
    let sent_at = chrono::DateTime::from_timestamp(now - 20, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    assert_eq!(e["entry"]["captured_at"], sent_at);
    assert_eq!(
        e["openings"]["evidence"]["body"]["business_phone_number_id"],
        OTHER_PHONE_NUMBER_ID
    );
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    let letters = letters.body["dead_letters"]
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["resolved_seq"], seq);
    assert_eq!(letters[1]["resolved_at"], Value::Null, "nothing to apply");
    // Saving the settings again applies nothing twice.
    let size = log_size(&app, &t).await;
    let put = app.put("/v1/channels", &t.admin, &body).await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(log_size(&app, &t).await, size);
}

/// Statuses, reactions and system messages for a business number the
/// tenant does not have are kept as dead letters (docs/messages.md), once
/// each; for its own numbers they record nothing. A system message that a
/// number changed is kept whole, holding the opt-out that closes its group
/// once the number is configured (docs/identities.md).
#[both]
async fn events_for_an_unknown_business_number_are_kept() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    let unknown = to_other_number;
    let system = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"phone_number_id": PHONE_NUMBER_ID},
            "messages": [{"from": "4915112345678", "id": "wamid.system", "timestamp": now.to_string(),
                "type": "system", "system": {"body": "User changed number", "type": "user_changed_number",
                "wa_id": "4915112345670"}}]}}]}]});
    for known in [
        fixture("status", now),
        fixture("reaction", now),
        system.clone(),
    ] {
        whatsapp(&app, &known).await;
    }
    let none = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(none.body["dead_letters"], json!([]));
    let mut system = system;
    system["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = json!("wamid.system2");
    for payload in [fixture("status", now), fixture("reaction", now), system] {
        let payload = unknown(payload);
        whatsapp(&app, &payload).await;
        whatsapp(&app, &payload).await; // Meta's retry keeps nothing more.
    }
    let kept = app.get("/v1/dead-letters", &t.admin).await;
    let kept = kept.body["dead_letters"].as_array().expect("array").clone();
    assert_eq!(kept.len(), 3, "{kept:?}");
    let mut kinds = Vec::new();
    for letter in &kept {
        assert_eq!(letter["reason"], "unknown_phone_number_id");
        assert_eq!(letter["phone_number_id"], OTHER_PHONE_NUMBER_ID);
        let id = letter["id"].as_i64().unwrap();
        let detail = app.get(&format!("/v1/dead-letters/{id}"), &t.admin).await;
        let payload = &detail.body["payload"];
        kinds.push(match payload["kind"].as_str() {
            Some("unrecorded") => payload["detail"]["type"].clone(),
            _ => json!([payload["kind"], payload["system"], payload["from"]]),
        });
    }
    assert_eq!(
        kinds,
        vec![
            json!("statuses"),
            json!("reaction"),
            json!(["message", "user_changed_number", "4915112345678"])
        ]
    );
    assert_eq!(log_size(&app, &t).await, 0);
}

#[both]
async fn an_old_start_never_lifts_a_newer_stop_and_a_future_stop_still_counts() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let now = now_secs();
    // Delivered out of order: the STOP first, then the START written before it.
    whatsapp(
        &app,
        &text("4915112345678", "wamid.o1", "STOP", false, now - 10),
    )
    .await;
    let size = log_size(&app, &t).await;
    whatsapp(
        &app,
        &text("4915112345678", "wamid.o2", "START", false, now - 20),
    )
    .await;
    assert_eq!(log_size(&app, &t).await, size, "nothing to lift");
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
    // A provider clock ten minutes ahead: the STOP counts from now.
    let other = "+4915112345679";
    app.recorded_opt_in(&t, web_opt_in(other, "Makro", &["marketing"]))
        .await;
    whatsapp(
        &app,
        &text("4915112345679", "wamid.o3", "stop", false, now + 600),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, other, "marketing", "whatsapp").await,
        "opted_out"
    );
    // A dead letter is kept once, however often it is delivered, and shows
    // no message id (a WhatsApp message id encodes the sender's number).
    let mut foreign = text(
        "4915112345678",
        "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFA==",
        "STOP",
        false,
        now,
    );
    foreign["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999");
    whatsapp(&app, &foreign).await;
    whatsapp(&app, &foreign).await;
    let answer = app.get("/v1/dead-letters", &t.admin).await;
    let letters = answer.body["dead_letters"].as_array().expect("array");
    assert_eq!(letters.len(), 1, "{:?}", answer.body);
    assert!(
        !answer.body.to_string().contains("wamid"),
        "{:?}",
        answer.body
    );
}

/// A signed payload always gets 200: identifiers PostgreSQL could not store
/// (a NUL) count as absent, so the change becomes a dead letter and a user
/// id is simply not remembered; an odd message id is kept (only its hash
/// and sealed evidence are stored).
#[both]
async fn signed_identifiers_with_control_characters_are_not_failures() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    let mut foreign = text("4915112345678", "wamid.nul.1", "JOIN MAKRO", true, now - 5);
    foreign["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("106540352242922\u{0}");
    whatsapp(&app, &foreign).await;
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(
        letters.body["dead_letters"][0]["reason"], "unknown_phone_number_id",
        "{}",
        letters.body
    );
    assert_eq!(
        letters.body["dead_letters"][0]["phone_number_id"],
        Value::Null
    );
    let mut odd_user = text("4915112345678", "wamid.nul.2", "JOIN MAKRO", true, now - 4);
    odd_user["entry"][0]["changes"][0]["value"]["contacts"] =
        json!([{"wa_id": "4915112345678", "user_id": "DE.\u{0}"}]);
    whatsapp(&app, &odd_user).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "allowed"
    );
    // A message id is only ever hashed or sealed: an odd one still counts,
    // and a STOP is never dropped for it.
    let stop = text("4915112345678", "wamid.\u{0}\u{7}", "STOP", false, now - 3);
    whatsapp(&app, &stop).await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "opted_out"
    );
}

/// A prompt with a control character saved before prompts were checked
/// cannot become a consent text: the opt-in is kept as a dead letter and
/// the webhook still answers 200.
#[both]
async fn an_unreadable_stored_prompt_becomes_a_dead_letter() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    crate::tamper::tamper(
        &app,
        &["UPDATE channel_settings SET settings = \
           replace(settings, 'Send JOIN MAKRO to get', 'Send JOIN MAKRO\\u0000 to get')"],
    );
    let now = now_secs();
    whatsapp(
        &app,
        &text(
            "4915112345678",
            "wamid.nul.prompt",
            "JOIN MAKRO",
            true,
            now - 5,
        ),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, NUMBER, "marketing", "whatsapp").await,
        "no_opt_in"
    );
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(
        letters.body["dead_letters"][0]["reason"], "unreadable_prompt",
        "{}",
        letters.body
    );
}

/// A message whose time is missing, unreadable or beyond any date is
/// treated like one from the future: an opt-in or a lift waits as a dead
/// letter for an admin, an opt-out counts from now.
#[both]
async fn a_message_without_a_usable_time_is_kept_like_a_future_one() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    let timed = |wa_id: &str, id: &str, body: &str, timestamp: Value| {
        let mut payload = text(wa_id, id, body, false, now);
        let message = &mut payload["entry"][0]["changes"][0]["value"]["messages"][0];
        match timestamp {
            Value::Null => {
                message.as_object_mut().unwrap().remove("timestamp");
            }
            other => message["timestamp"] = other,
        }
        payload
    };
    let overflowing = json!(i64::MAX.to_string());
    for (i, timestamp) in [overflowing.clone(), Value::Null, json!("soon")]
        .into_iter()
        .enumerate()
    {
        let number = format!("49151123456{}", 70 + i);
        whatsapp(
            &app,
            &timed(&number, &format!("wamid.join{i}"), "JOIN MAKRO", timestamp),
        )
        .await;
        assert_eq!(
            reason_for(&app, &t, &format!("+{number}"), "marketing", "whatsapp").await,
            "no_opt_in"
        );
    }
    assert_eq!(log_size(&app, &t).await, 0);
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    let reasons: Vec<Value> = letters.body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["reason"].clone())
        .collect();
    assert_eq!(reasons, vec![json!("invalid_timestamp"); 3]);
    // A STOP without a usable time still counts, from now.
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    whatsapp(
        &app,
        &timed("4915112345678", "wamid.stop", "STOP", overflowing),
    )
    .await;
    let answer = app
        .check(
            &t,
            json!({"number": NUMBER, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(answer.body["reason"], "opted_out", "{}", answer.body);
    let captured = answer.body["consent"]["captured_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(captured >= at(-60) && captured <= at(1), "{captured}");
}

/// docs/decisions.md: retiring a brand stops webhook matches for it (its
/// recorded opt-ins keep counting); opt-outs still record.
#[both]
async fn a_retired_brand_takes_no_more_opt_ins_by_message() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let now = now_secs();
    whatsapp(
        &app,
        &text("4915112345671", "wamid.r1", "JOIN MAKRO", false, now),
    )
    .await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345671", "marketing", "whatsapp").await,
        "allowed"
    );
    let retired = app
        .post("/v1/brands/Makro/retire", &t.admin, &json!({}))
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.body);
    let size = log_size(&app, &t).await;
    whatsapp(
        &app,
        &text("4915112345672", "wamid.r2", "JOIN MAKRO", false, now),
    )
    .await;
    twilio(
        &app,
        &sms(
            "+4915112345673",
            "SM000000000000000000000000000ret1",
            "JOIN",
        ),
    )
    .await;
    assert_eq!(log_size(&app, &t).await, size, "no opt-in recorded");
    assert_eq!(
        reason_for(&app, &t, "+4915112345672", "marketing", "whatsapp").await,
        "no_opt_in"
    );
    // The opt-in given before the retirement still counts, and a STOP still records.
    assert_eq!(
        reason_for(&app, &t, "+4915112345671", "marketing", "whatsapp").await,
        "allowed"
    );
    whatsapp(&app, &text("4915112345671", "wamid.r3", "STOP", false, now)).await;
    assert_eq!(
        reason_for(&app, &t, "+4915112345671", "marketing", "whatsapp").await,
        "opted_out"
    );
}
