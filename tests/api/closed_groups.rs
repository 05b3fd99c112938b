//! Closed groups, exactly (docs/decisions.md rule 2, section 3): a closed
//! group answers `opted_out` on the opt-out that closed it, whatever else
//! it holds; windows belong to the subject whose message opened them and
//! are read over the asked identity's own group only; a user id that
//! arrives with another number or parent id closes its group; a system
//! message kept for a business number not configured yet closes the group
//! once it is; windows and lifts reach across an open group.

use crate::channels::{configured, entry, log_size, now_secs, settings, whatsapp};
use crate::helpers::*;
use crate::identities::{
    decided, decisions, notification, number_and_user, said, user, From, PARENT, PHONE, USER, WABA,
    WA_ID,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A marketing check on WhatsApp by number or user id: the whole answer.
async fn check(app: &TestApp, t: &Tenant, identity: &str) -> Value {
    let field = if identity.starts_with('+') {
        "number"
    } else {
        "user_id"
    };
    let asked = json!({field: identity, "purpose": "marketing", "brand": "Makro"});
    let answer = app.check(t, asked).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// The system message that a user changed their user id, sent `ago`
/// seconds ago from `from`.
fn changed_user_id(from: From<'_>, id: &str, ago: i64) -> Value {
    let message = json!({"id": id, "timestamp": (now_secs() - ago).to_string(),
        "type": "system", "system": {"body": "User changed their user id",
            "type": "user_changed_user_id", "user_id": "BR.2002"}});
    notification(WABA, from, message)
}

/// An opt-in captured after the closing message's own time (delivered
/// before it) does not keep a closed group allowed: it answers
/// `opted_out`, resting on the closing opt-out, for every purpose.
#[both]
async fn a_closed_group_rests_on_its_closing_opt_out_whatever_the_order() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let mut opt_in = web_opt_in(PHONE, "Makro", &["marketing", "utility"]);
    opt_in.as_object_mut().unwrap().remove("number");
    opt_in["user_id"] = json!(USER);
    opt_in["captured_at"] = json!(at(-10));
    app.recorded_opt_in(&t, opt_in).await;
    assert_eq!(decided(&app, &t, USER).await, "allowed");
    // Meta's system message, written a minute before the opt-in.
    whatsapp(&app, &changed_user_id(user(USER), "wamid.late", 60)).await;
    let closing = entry(&app, &t, 1).await;
    assert_eq!(closing["entry"]["type"], "opt_out");
    assert_eq!(
        closing["openings"]["evidence"]["body"]["system"],
        "user_changed_user_id"
    );
    let decision = check(&app, &t, USER).await;
    assert_eq!(decision["reason"], "opted_out", "{decision}");
    assert_eq!(decision["consent"]["seq"], 1, "{decision}");
    assert_eq!(decision["consent"]["type"], "opt_out");
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"user_id": USER}))
        .await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.body);
    for consent in query.body["consents"].as_array().expect("consents") {
        assert_eq!(consent["status"], "opted_out", "{consent}");
        assert_eq!(consent["seq"], 1, "{consent}");
    }
}

/// The old owner's user id never shows a window the number's new holder
/// opened, and the new holder's window is theirs alone.
#[both]
async fn windows_belong_to_the_subject_whose_message_opened_them() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.w1", "hi", 300),
    )
    .await;
    let old = check(&app, &t, USER).await;
    assert_eq!(old["window"]["open"], true, "{old}");
    // The number arrives with another user id: it changed hands.
    let new_holder = "BR.6060606060";
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, new_holder), "wamid.w2", "hello", 100),
    )
    .await;
    let old = check(&app, &t, USER).await;
    assert_eq!(old["reason"], "opted_out", "{old}");
    assert_eq!(old["window"]["open"], false, "{old}");
    assert_eq!(old["session_reply_allowed"], false, "{old}");
    assert_eq!(old["template_required"], true, "{old}");
    for identity in [PHONE, new_holder] {
        let new = check(&app, &t, identity).await;
        assert_eq!(new["reason"], "no_opt_in", "{new}");
        assert_eq!(new["window"]["open"], true, "{new}");
        assert_eq!(new["session_reply_allowed"], true, "{new}");
    }
}

/// Across an open group a window counts for every identity: a message by
/// the user id alone opens the window a check by the number sees.
#[both]
async fn a_message_by_user_id_opens_the_window_for_a_check_by_number() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    // Linked by a message two days old: its own window closed long ago.
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.x1", "hi", 2 * 86_400),
    )
    .await;
    assert_eq!(check(&app, &t, PHONE).await["window"]["open"], false);
    let sent = now_secs() - 60;
    whatsapp(&app, &said(user(USER), "wamid.x2", "hello", 60)).await;
    let by_number = check(&app, &t, PHONE).await;
    assert_eq!(by_number["window"]["open"], true, "{by_number}");
    let closes = consent_ledger::domain::time::Timestamp::from_millis((sent + 86_400) * 1000);
    assert_eq!(by_number["window"]["closes_at"], closes.to_string());
    assert_eq!(by_number["session_reply_allowed"], true);
}

/// A keyword STOP by the number is lifted by START from the linked user id
/// alone: lifts apply to the whole group.
#[both]
async fn a_start_by_user_id_lifts_a_stop_by_the_linked_number() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.l1", "JOIN MAKRO", 300),
    )
    .await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["allowed", "allowed"]
    );
    let number_only = From {
        wa_id: Some(WA_ID),
        ..From::default()
    };
    whatsapp(&app, &said(number_only, "wamid.l2", "STOP", 200)).await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["opted_out", "opted_out"]
    );
    let stop = log_size(&app, &t).await - 1;
    whatsapp(&app, &said(user(USER), "wamid.l3", "START", 100)).await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["allowed", "allowed"]
    );
    let lift = entry(&app, &t, stop + 1).await;
    assert_eq!(lift["entry"]["type"], "opt_out_lifted");
    assert_eq!(lift["entry"]["lifts"], stop);
    assert_eq!(lift["openings"]["subject"]["user_id"], USER);
}

/// A user id that arrives, through the same business account, with
/// another number than the one it is linked to: its group is closed (the
/// old number answers `opted_out`), and the user id starts anew.
#[both]
async fn a_user_id_arriving_with_another_number_closes_its_group() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.n1", "JOIN MAKRO", 300),
    )
    .await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["allowed", "allowed"]
    );
    let size = log_size(&app, &t).await;
    let other_wa_id = "5511912345678";
    whatsapp(
        &app,
        &said(number_and_user(other_wa_id, USER), "wamid.n2", "hi", 100),
    )
    .await;
    let closing = entry(&app, &t, size).await;
    assert_eq!(closing["entry"]["type"], "opt_out");
    assert_eq!(closing["openings"]["subject"]["user_id"], USER);
    assert_eq!(
        closing["openings"]["evidence"]["body"]["reason"],
        "number changed"
    );
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER, "+5511912345678"]).await,
        ["opted_out", "no_opt_in", "no_opt_in"]
    );
}

/// The same for a user id that arrives with another parent id.
#[both]
async fn a_user_id_arriving_with_another_parent_closes_its_group() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let with_parent = |parent| From {
        parent: Some(parent),
        ..user(USER)
    };
    whatsapp(
        &app,
        &said(with_parent(PARENT), "wamid.p1", "JOIN MAKRO", 300),
    )
    .await;
    assert_eq!(
        decisions(&app, &t, &[USER, PARENT]).await,
        ["allowed", "allowed"]
    );
    let size = log_size(&app, &t).await;
    let other_parent = "BR.ENT.99999999999";
    whatsapp(
        &app,
        &said(with_parent(other_parent), "wamid.p2", "hi", 100),
    )
    .await;
    let closing = entry(&app, &t, size).await;
    assert_eq!(closing["entry"]["type"], "opt_out");
    assert_eq!(closing["openings"]["subject"]["user_id"], USER);
    assert_eq!(
        decisions(&app, &t, &[PARENT, USER, other_parent]).await,
        ["opted_out", "no_opt_in", "no_opt_in"]
    );
}

/// A `user_changed_number` that arrives through a business number the
/// tenant has not configured yet is kept, holding an opt-out, and closes
/// the group once the number is configured.
#[both]
async fn a_changed_number_kept_as_a_dead_letter_closes_the_group_once_configured() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let number_only = From {
        wa_id: Some(WA_ID),
        ..From::default()
    };
    whatsapp(&app, &said(number_only, "wamid.d1", "JOIN MAKRO", 300)).await;
    assert_eq!(decided(&app, &t, PHONE).await, "allowed");
    let unconfigured = "222333444555666";
    let mut changed = crate::identities::changed_number(WA_ID, "5511900000000", "wamid.d2", 200);
    changed["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(unconfigured);
    whatsapp(&app, &changed).await;
    assert_eq!(
        decided(&app, &t, PHONE).await,
        "allowed",
        "kept, not applied yet"
    );
    let size = log_size(&app, &t).await;
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(
        letters.body["dead_letters"].as_array().map(Vec::len),
        Some(1)
    );
    let letter_id = letters.body["dead_letters"][0]["id"].as_i64().expect("id");
    // The admin adds the business number: the group closes.
    let mut body = settings();
    body["whatsapp"]["phone_numbers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": unconfigured, "display": "+4930999999"}));
    let put = app.put("/v1/channels", &t.admin, &body).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(log_size(&app, &t).await, size + 1);
    let closing = entry(&app, &t, size).await;
    assert_eq!(closing["entry"]["type"], "opt_out");
    let evidence = &closing["openings"]["evidence"]["body"];
    assert_eq!(evidence["system"], "user_changed_number");
    assert_eq!(evidence["reason"], "number changed");
    assert_eq!(evidence["dead_letter_id"], letter_id.to_string());
    let decision = check(&app, &t, PHONE).await;
    assert_eq!(decision["reason"], "opted_out", "{decision}");
    assert_eq!(decision["consent"]["seq"], size);
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(letters.body["dead_letters"][0]["resolved_seq"], size);
    // The number's next message is a new person's: a new subject.
    whatsapp(&app, &said(number_only, "wamid.d3", "hello", 100)).await;
    assert_eq!(decided(&app, &t, PHONE).await, "no_opt_in");
}
