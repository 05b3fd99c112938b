//! Double opt-in (docs/pages.md): when the tenant's
//! `require_confirmation_for` lists an opt-in's capture channel, the opt-in
//! answers `unconfirmed` until the number itself sends back its code by
//! WhatsApp or SMS, which appends a `confirmation` entry with that message
//! as evidence. Codes expire after 24 hours; another number's message, or
//! a wrong code, confirms nothing.

use crate::channels::{configured, entry, log_size, now_secs, sms, text, twilio, whatsapp};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const OTHER: &str = "+4915187654321";

async fn require_confirmation(app: &TestApp, t: &Tenant, channels: Value) {
    let body = json!({ "require_confirmation_for": channels });
    let patched = app.patch("/v1/tenant", &t.admin, &body).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
}

fn check(number: &str, channel: &str) -> Value {
    json!({"number": number, "purpose": "marketing", "brand": "Makro", "channel": channel})
}

/// A web opt-in that must be confirmed; its answer and its code.
async fn unconfirmed_opt_in(app: &TestApp, t: &Tenant, body: Value) -> (Value, String) {
    let answer = app.opt_in(t, body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let code = answer.body["confirmation"]["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    (answer.body, code)
}

#[both]
async fn a_web_opt_in_counts_once_the_number_sends_its_code() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    require_confirmation(&app, &t, json!(["web"])).await;
    let (answer, code) =
        unconfirmed_opt_in(&app, &t, web_opt_in(NUMBER, "Makro", &["marketing"])).await;
    let opt_in_seq = answer["seq"].as_u64().expect("seq");
    assert_eq!(code.len(), 6);
    assert_eq!(
        answer["confirmation"]["whatsapp_link"],
        format!("https://wa.me/4930123456?text=CONFIRM%20{code}")
    );
    let recorded_at = answer["recorded_at"].as_str().expect("recorded_at");
    let expires_at = answer["confirmation"]["expires_at"]
        .as_str()
        .expect("expiry");
    let hours = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap()
        - chrono::DateTime::parse_from_rfc3339(recorded_at).unwrap();
    assert_eq!(hours.num_minutes(), 24 * 60, "codes live 24 hours");
    let stored = entry(&app, &t, opt_in_seq).await;
    assert_eq!(stored["entry"]["confirmation_required"], true);
    assert!(
        !stored.to_string().contains(&code),
        "the code is not in the ledger"
    );
    assert_eq!(
        app.reason(&t, check(NUMBER, "whatsapp")).await,
        "unconfirmed"
    );

    // Another number with the right code, the number with a wrong code.
    let at = now_secs() - 5;
    let other = text(
        &OTHER[1..],
        "wamid.k1",
        &format!("CONFIRM {code}"),
        false,
        at,
    );
    whatsapp(&app, &other).await;
    let wrong = text(&NUMBER[1..], "wamid.k2", "CONFIRM AAAAAA", false, at);
    whatsapp(&app, &wrong).await;
    assert_eq!(log_size(&app, &t).await, 1, "nothing confirmed");
    assert_eq!(
        app.reason(&t, check(NUMBER, "whatsapp")).await,
        "unconfirmed"
    );

    // The number itself, the code in lower case inside a sentence.
    let said = format!("yes! confirm {} please", code.to_lowercase());
    let right = text(&NUMBER[1..], "wamid.k3", &said, false, now_secs() - 2);
    whatsapp(&app, &right).await;
    assert_eq!(app.reason(&t, check(NUMBER, "whatsapp")).await, "allowed");
    let confirmation = entry(&app, &t, 1).await;
    assert_eq!(confirmation["entry"]["type"], "confirmation");
    assert_eq!(confirmation["entry"]["confirms"], opt_in_seq);
    assert_eq!(confirmation["entry"]["channel"], "whatsapp");
    assert_eq!(confirmation["entry"]["collector"], "webhook:whatsapp");
    let evidence = &confirmation["openings"]["evidence"]["body"];
    assert_eq!(evidence["message_id"], "wamid.k3");
    assert_eq!(evidence["body"], said);
    // The decision rests on the opt-in, with its own time.
    let decision = app.check(&t, check(NUMBER, "whatsapp")).await;
    assert_eq!(decision.body["consent"]["seq"], opt_in_seq);
    // Sent again: confirmed once.
    let again = text(&NUMBER[1..], "wamid.k4", &said, false, now_secs() - 1);
    whatsapp(&app, &again).await;
    assert_eq!(log_size(&app, &t).await, 2);
    // Channels not listed need no confirmation.
    let mut paper = web_opt_in(OTHER, "Makro", &["marketing"]);
    paper["channel"] = json!("ivr");
    paper["evidence"] = json!({"call_id": "CA1", "prompt_script": "Press 1", "dtmf": "1"});
    let direct = app.opt_in(&t, paper).await;
    assert_eq!(direct.status, StatusCode::CREATED, "{}", direct.body);
    assert!(direct.body.get("confirmation").is_none(), "{}", direct.body);
    assert_eq!(app.reason(&t, check(OTHER, "whatsapp")).await, "allowed");
    // The log with its confirmation verifies.
    verify_db_passes(&app).await;
}

#[both]
async fn an_sms_carrying_the_code_confirms_too() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    require_confirmation(&app, &t, json!(["web"])).await;
    let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    body["message_channels"] = json!(["sms"]);
    let (_, code) = unconfirmed_opt_in(&app, &t, body).await;
    assert_eq!(app.reason(&t, check(NUMBER, "sms")).await, "unconfirmed");
    twilio(
        &app,
        &sms(OTHER, "SM00000000000000000000000000000001", &code),
    )
    .await;
    assert_eq!(app.reason(&t, check(NUMBER, "sms")).await, "unconfirmed");
    twilio(
        &app,
        &sms(NUMBER, "SM00000000000000000000000000000002", &code),
    )
    .await;
    assert_eq!(app.reason(&t, check(NUMBER, "sms")).await, "allowed");
    let confirmation = entry(&app, &t, 1).await;
    assert_eq!(confirmation["entry"]["type"], "confirmation");
    assert_eq!(confirmation["entry"]["channel"], "sms");
    assert_eq!(confirmation["entry"]["collector"], "webhook:twilio");
}

#[both]
async fn a_code_expires_after_a_day_and_its_opt_in_never_counts() {
    let app = spawn_app_at_manual_clock().await;
    let t = configured(&app).await;
    require_confirmation(&app, &t, json!(["web"])).await;
    let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
    body["captured_at"] = json!(app.at(-60));
    let (_, code) = unconfirmed_opt_in(&app, &t, body).await;
    app.clock.advance(24 * 3600 * 1000 + 1000);
    let late_at = app.clock.now().millis() / 1000;
    let late = text(&NUMBER[1..], "wamid.late", &code, false, late_at);
    whatsapp(&app, &late).await;
    assert_eq!(
        log_size(&app, &t).await,
        1,
        "an expired code confirms nothing"
    );
    assert_eq!(app.reason(&t, check(NUMBER, "whatsapp")).await, "no_opt_in");
}

/// An opt-in by user id is confirmed by a message that carries that user
/// id, with or without a number; never by a linked number alone (docs/pages.md).
#[both]
async fn an_opt_in_by_user_id_is_confirmed_by_a_message_that_carries_it() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    require_confirmation(&app, &t, json!(["web"])).await;
    let by_user_id = |user: &str| {
        let mut body = web_opt_in(NUMBER, "Makro", &["marketing"]);
        body.as_object_mut().unwrap().remove("number");
        body["user_id"] = json!(user);
        body
    };
    let user = "DE.5550001112223334";
    let (_, code) = unconfirmed_opt_in(&app, &t, by_user_id(user)).await;
    // The number and the user id are one person from this message on.
    let mut hello = text(&NUMBER[1..], "wamid.u0", "hello", false, now_secs() - 9);
    hello["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = json!(user);
    whatsapp(&app, &hello).await;
    // The linked number alone does not confirm an opt-in made by the user id.
    let alone = text(&NUMBER[1..], "wamid.u1", &code, false, now_secs() - 5);
    whatsapp(&app, &alone).await;
    let asked = |user: &str| json!({"user_id": user, "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, asked(user)).await, "unconfirmed");
    // The user id with the number confirms it.
    let mut both = text(&NUMBER[1..], "wamid.u2", &code, false, now_secs() - 2);
    both["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = json!(user);
    whatsapp(&app, &both).await;
    assert_eq!(app.reason(&t, asked(user)).await, "allowed");
    let opt_in = entry(&app, &t, 0).await;
    let size = log_size(&app, &t).await;
    let confirmation = entry(&app, &t, size - 1).await;
    assert_eq!(confirmation["entry"]["type"], "confirmation");
    assert_eq!(confirmation["entry"]["confirms"], 0);
    assert_eq!(confirmation["entry"]["subject"], opt_in["entry"]["subject"]);
    // And a user id with no number at all confirms its own opt-in.
    let other = "DE.7770001112223334";
    let (_, code) = unconfirmed_opt_in(&app, &t, by_user_id(other)).await;
    let mut own = text(&NUMBER[1..], "wamid.u3", &code, false, now_secs() - 1);
    let value = &mut own["entry"][0]["changes"][0]["value"];
    value["contacts"][0] = json!({"profile": {"name": "Ana"}, "user_id": other});
    value["messages"][0].as_object_mut().unwrap().remove("from");
    whatsapp(&app, &own).await;
    assert_eq!(app.reason(&t, asked(other)).await, "allowed");
}

/// A backfill imports consent as it was: it never waits for a
/// confirmation, whatever `require_confirmation_for` says.
#[both]
async fn a_backfilled_opt_in_never_waits_for_confirmation() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    require_confirmation(&app, &t, json!(["web"])).await;
    let mut opt_in = web_opt_in(OTHER, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(days_ago(90));
    opt_in["backfill"] = json!(true);
    let answer = app.post("/v1/opt-ins", &t.admin, &opt_in).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(answer.body.get("confirmation").is_none(), "{}", answer.body);
    let seq = answer.body["seq"].as_u64().unwrap();
    let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert!(
        entry.body["entry"].get("confirmation_required").is_none(),
        "{}",
        entry.body
    );
    assert_eq!(app.reason(&t, check(OTHER, "whatsapp")).await, "allowed");
}
