//! People known without a number (docs/identities.md): consent by WhatsApp
//! user id, identities linked into one person by signed webhooks, a
//! changed or reassigned number closing its group, and every endpoint by
//! `user_id`. Payloads are shaped like Meta's: `contacts[].user_id`,
//! `contacts[].parent_user_id`, `messages[].from_user_id`, no `from` for
//! a person who hides their number.

use crate::channels::{configured, entry, log_size, now_secs, whatsapp, PHONE_NUMBER_ID};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The WhatsApp Business Account the messages come through (`entry[].id`).
pub(crate) const WABA: &str = "102290129340398";
pub(crate) const USER: &str = "BR.1502576394655843";
pub(crate) const PARENT: &str = "BR.ENT.88012345678901234567";
pub(crate) const PHONE: &str = "+5511987654321";
pub(crate) const WA_ID: &str = "5511987654321";

/// Who a message comes from: any of a number (`wa_id`), a user id and a
/// parent id.
#[derive(Clone, Copy, Default)]
pub(crate) struct From<'a> {
    pub(crate) wa_id: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) parent: Option<&'a str>,
}

pub(crate) fn user(user_id: &str) -> From<'_> {
    From {
        user_id: Some(user_id),
        ..From::default()
    }
}

pub(crate) fn number_and_user<'a>(wa_id: &'a str, user_id: &'a str) -> From<'a> {
    From {
        wa_id: Some(wa_id),
        user_id: Some(user_id),
        parent: None,
    }
}

/// One message item and its contact, as Meta shapes them.
pub(crate) fn notification(waba: &str, from: From<'_>, message: Value) -> Value {
    let mut contact = json!({"profile": {"name": "Ana Souza"}});
    let mut message = message;
    if let Some(wa_id) = from.wa_id {
        contact["wa_id"] = json!(wa_id);
        message["from"] = json!(wa_id);
    }
    if let Some(user_id) = from.user_id {
        contact["user_id"] = json!(user_id);
        message["from_user_id"] = json!(user_id);
    }
    if let Some(parent) = from.parent {
        contact["parent_user_id"] = json!(parent);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [contact], "messages": [message]}}]}]})
}

/// A text message sent `ago` seconds ago.
pub(crate) fn said(from: From<'_>, id: &str, body: &str, ago: i64) -> Value {
    let message = json!({"id": id, "timestamp": (now_secs() - ago).to_string(),
        "type": "text", "text": {"body": body}});
    notification(WABA, from, message)
}

/// Meta's system message that the sender changed their number.
pub(crate) fn changed_number(old_wa_id: &str, new_wa_id: &str, id: &str, ago: i64) -> Value {
    let message = json!({"id": id, "timestamp": (now_secs() - ago).to_string(),
        "type": "system", "system": {"body": "User changed their number",
            "type": "user_changed_number", "wa_id": new_wa_id}});
    let from = From {
        wa_id: Some(old_wa_id),
        ..From::default()
    };
    notification(WABA, from, message)
}

/// The decision for marketing on WhatsApp, by number or by user id.
pub(crate) async fn decided(app: &TestApp, t: &Tenant, identity: &str) -> String {
    let field = if identity.starts_with('+') {
        "number"
    } else {
        "user_id"
    };
    let answer = app
        .check(
            t,
            json!({field: identity, "purpose": "marketing", "brand": "Makro"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body[field], identity, "the identity asked is echoed");
    let other = if field == "number" {
        "user_id"
    } else {
        "number"
    };
    assert!(answer.body.get(other).is_none(), "{}", answer.body);
    answer.body["reason"].as_str().expect("reason").to_owned()
}

pub(crate) async fn decisions(app: &TestApp, t: &Tenant, identities: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for identity in identities {
        out.push(decided(app, t, identity).await);
    }
    out
}

async fn verifier_key(app: &TestApp, t: &Tenant) -> String {
    app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .expect("verifier key")
        .to_owned()
}

/// The tenant's export verifies offline with `consent-ledger verify`.
async fn export_verifies(app: &TestApp, t: &Tenant) -> Vec<Value> {
    let (status, export) = app.get_text("/v1/export", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let path = app.scratch().join("identities-export.ndjson");
    std::fs::write(&path, &export).expect("write the export");
    let vkey = verifier_key(app, t).await;
    let path = path.to_string_lossy().into_owned();
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    export
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The story of `identities-v1.json`, through signed webhooks and the API:
/// an opt-in and a STOP by user id alone, a number's opt-in, the link, a
/// parent id, then a changed number that closes the group.
#[both]
async fn a_person_by_user_id_is_linked_to_their_number_until_it_changes() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(&app, &said(user(USER), "wamid.u1", "JOIN MAKRO", 600)).await;
    assert_eq!(
        decided(&app, &t, USER).await,
        "allowed",
        "opt-in by user id"
    );
    let e = entry(&app, &t, 0).await;
    assert_eq!(e["entry"]["type"], "opt_in");
    assert_eq!(e["openings"]["subject"]["user_id"], USER);
    assert_eq!(e["openings"]["subject"]["e164"], Value::Null);
    whatsapp(&app, &said(user(USER), "wamid.u2", "STOP", 500)).await;
    assert_eq!(
        decided(&app, &t, USER).await,
        "opted_out",
        "STOP by user id"
    );
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(letters.body["dead_letters"], json!([]), "no dead letter");

    let mut opt_in = web_opt_in(PHONE, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(at(-400));
    app.recorded_opt_in(&t, opt_in).await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["allowed", "opted_out"],
        "not linked yet"
    );

    // The number and the user id in one message: one link, then one person.
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.l1", "hi", 300),
    )
    .await;
    let size = log_size(&app, &t).await;
    let link = entry(&app, &t, size - 1).await;
    assert_eq!(link["entry"]["type"], "identity_linked");
    assert_eq!(link["entry"]["channel"], "whatsapp");
    assert_eq!(link["entry"]["collector"], "webhook:whatsapp");
    assert_eq!(link["openings"]["subject"]["e164"], PHONE);
    assert_eq!(link["openings"]["linked"]["user_id"], USER);
    assert_eq!(
        link["openings"]["evidence"]["body"]["message_id"],
        "wamid.l1"
    );
    let opt_in_subject = entry(&app, &t, 0).await["entry"]["subject"].clone();
    assert_eq!(link["entry"]["linked"], opt_in_subject);
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["allowed", "allowed"],
        "the number's opt-in is later than the user id's STOP"
    );
    // The same pair again links nothing more.
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.l2", "ok", 250),
    )
    .await;
    assert_eq!(log_size(&app, &t).await, size);

    // A user id with its parent id: the parent joins the group.
    let with_parent = From {
        parent: Some(PARENT),
        ..user(USER)
    };
    whatsapp(&app, &said(with_parent, "wamid.p1", "hello", 200)).await;
    let parent_link = entry(&app, &t, size).await;
    assert_eq!(parent_link["entry"]["type"], "identity_linked");
    assert_eq!(parent_link["openings"]["subject"]["user_id"], USER);
    assert_eq!(parent_link["openings"]["linked"]["user_id"], PARENT);
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER, PARENT]).await,
        ["allowed", "allowed", "allowed"]
    );
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": PHONE}))
        .await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.body);
    assert_eq!(query.body["group"].as_array().map(Vec::len), Some(3));
    assert_eq!(query.body["subject"], link["entry"]["subject"]);
    assert_eq!(
        query.body["history"].as_array().map(Vec::len),
        Some(5),
        "the group's whole history"
    );

    // The number changed: the whole group is opted out and closed.
    whatsapp(
        &app,
        &changed_number(WA_ID, "5511900000000", "wamid.c1", 100),
    )
    .await;
    let closing = entry(&app, &t, size + 1).await;
    assert_eq!(closing["entry"]["type"], "opt_out");
    assert_eq!(
        closing["entry"]["purposes"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(closing["openings"]["subject"]["e164"], PHONE);
    let evidence = &closing["openings"]["evidence"]["body"];
    assert_eq!(evidence["reason"], "number changed");
    assert_eq!(evidence["system"], "user_changed_number");
    assert_eq!(evidence["message_id"], "wamid.c1");
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER, PARENT]).await,
        ["opted_out", "opted_out", "opted_out"]
    );

    // The number's new owner opts in: a new subject, nothing carried over.
    let new_owner = number_and_user(WA_ID, "BR.777");
    whatsapp(&app, &said(new_owner, "wamid.n1", "JOIN MAKRO", 50)).await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, "BR.777", USER, PARENT]).await,
        ["allowed", "allowed", "opted_out", "opted_out"]
    );
    let after = log_size(&app, &t).await;
    let new_link = entry(&app, &t, after - 2).await;
    assert_eq!(new_link["entry"]["type"], "identity_linked");
    assert_ne!(
        new_link["entry"]["subject"], link["entry"]["subject"],
        "a closed group is never linked again: the number has a new salt"
    );
    let opted_in = entry(&app, &t, after - 1).await;
    assert_eq!(opted_in["entry"]["type"], "opt_in");
    assert_eq!(opted_in["entry"]["subject"], new_link["entry"]["subject"]);

    let lines = export_verifies(&app, &t).await;
    let linked = lines
        .iter()
        .filter(|l| l["entry"]["type"] == "identity_linked")
        .count();
    assert_eq!(linked, 3);
    // A link's receipt verifies offline, and so does the database.
    let receipt = app
        .get(&format!("/v1/entries/{}/receipt", size - 1), &t.auditor)
        .await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.body);
    assert_eq!(receipt.body["openings"]["linked"]["user_id"], USER);
    let path = app.scratch().join("link-receipt.json");
    std::fs::write(&path, receipt.body.to_string()).expect("write the receipt");
    let vkey = verifier_key(&app, &t).await;
    let path = path.to_string_lossy().into_owned();
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified: receipt"), "{out}");
    verify_db_passes(&app).await;
}

/// A number that arrives through the same business account with another
/// user id than the one it is linked to has changed hands: its group is
/// closed before the message is processed as the new person's.
#[both]
async fn a_number_seen_with_another_user_id_is_reassigned() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let first = number_and_user(WA_ID, USER);
    whatsapp(&app, &said(first, "wamid.a1", "JOIN MAKRO", 300)).await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["allowed", "allowed"]
    );
    let size = log_size(&app, &t).await;
    let second = number_and_user(WA_ID, "BR.999");
    whatsapp(&app, &said(second, "wamid.a2", "JOIN MAKRO", 200)).await;
    let closing = entry(&app, &t, size).await;
    assert_eq!(closing["entry"]["type"], "opt_out");
    assert_eq!(closing["openings"]["subject"]["e164"], PHONE);
    assert_eq!(
        closing["openings"]["evidence"]["body"]["reason"],
        "number changed"
    );
    assert_eq!(
        decisions(&app, &t, &[PHONE, "BR.999", USER]).await,
        ["allowed", "allowed", "opted_out"],
        "the new owner's JOIN counts for the new subject only"
    );
    // Through another business account the same pairing is not a change.
    let before = log_size(&app, &t).await;
    let message = json!({"id": "wamid.a3", "timestamp": (now_secs() - 100).to_string(),
        "type": "text", "text": {"body": "hello"}});
    let elsewhere = notification("999000111222333", number_and_user(WA_ID, "BR.555"), message);
    whatsapp(&app, &elsewhere).await;
    assert_eq!(log_size(&app, &t).await, before + 1, "one link, no closure");
    assert_eq!(
        decisions(&app, &t, &[PHONE, "BR.555"]).await,
        ["allowed", "allowed"]
    );
    export_verifies(&app, &t).await;
}

/// Every endpoint that names a person takes `user_id` instead of `number`
/// (exactly one), answers echo it, and a user id is WhatsApp's only.
#[both]
async fn the_api_takes_a_user_id_in_place_of_a_number() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let mut opt_in = web_opt_in(PHONE, "Makro", &["marketing"]);
    opt_in.as_object_mut().unwrap().remove("number");
    opt_in["user_id"] = json!(USER);
    let recorded = app.opt_in(&t, opt_in.clone()).await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{}", recorded.body);
    assert_eq!(decided(&app, &t, USER).await, "allowed");
    assert_eq!(decided(&app, &t, PHONE).await, "no_opt_in");

    let refused = |body: Value, code: &'static str| {
        let app = &app;
        let t = &t;
        async move {
            let answer = app.opt_in(t, body).await;
            assert_eq!(
                answer.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                answer.body
            );
            assert_eq!(answer.code(), code, "{}", answer.body);
            answer
        }
    };
    let mut both = opt_in.clone();
    both["number"] = json!(PHONE);
    refused(both, "invalid_request").await;
    let mut neither = opt_in.clone();
    neither.as_object_mut().unwrap().remove("user_id");
    refused(neither, "invalid_request").await;
    for bad in ["br.1", "BR.", "BR.12-3", "+5511987654321", "BR.ENT."] {
        let mut malformed = opt_in.clone();
        malformed["user_id"] = json!(bad);
        let answer = refused(malformed, "invalid_user_id").await;
        assert!(!answer.body.to_string().contains(bad), "never echoed");
    }
    let mut with_region = opt_in.clone();
    with_region["region"] = json!("BR");
    refused(with_region, "invalid_request").await;
    let mut over_sms = opt_in.clone();
    over_sms["message_channels"] = json!(["sms"]);
    refused(over_sms, "invalid_request").await;

    let sms_check = app
        .check(
            &t,
            json!({"user_id": USER, "purpose": "marketing", "channel": "sms"}),
        )
        .await;
    assert_eq!(sms_check.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sms_check.code(), "invalid_request");

    // An opt-out by user id keeps its default of both channels.
    let mut opt_out = api_opt_out(PHONE);
    opt_out.as_object_mut().unwrap().remove("number");
    opt_out["user_id"] = json!(USER);
    let out = app.opt_out(&t, opt_out).await;
    assert_eq!(out.status, StatusCode::CREATED, "{}", out.body);
    let e = entry_of(&app, &t, out.body["seq"].as_u64().unwrap()).await;
    assert_eq!(e["entry"]["message_channels"], json!(["sms", "whatsapp"]));
    assert_eq!(decided(&app, &t, USER).await, "opted_out");

    let interaction = app
        .post(
            "/v1/interactions",
            &t.collector,
            &json!({"user_id": USER, "business_phone_number_id": "106540352242922"}),
        )
        .await;
    assert_eq!(interaction.status, StatusCode::OK, "{}", interaction.body);
    assert_eq!(interaction.body["user_id"], USER);
    assert!(interaction.body.get("number").is_none());
    assert_eq!(interaction.body["window"]["open"], true);

    let batch = app
        .post(
            "/v1/checks/batch",
            &t.sender,
            &json!({"checks": [
                {"user_id": USER, "purpose": "marketing"},
                {"user_id": "nope", "purpose": "marketing"},
                {"number": PHONE, "purpose": "marketing"},
                {"user_id": USER, "purpose": "marketing", "channel": "sms"}
            ]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let items = &batch.body["decisions"];
    assert_eq!(items[0]["user_id"], USER);
    assert_eq!(items[0]["reason"], "opted_out");
    assert_eq!(items[1]["user_id"], "nope");
    assert_eq!(items[1]["error"]["code"], "invalid_user_id");
    assert!(items[1].get("number").is_none());
    assert_eq!(items[2]["number"], PHONE);
    assert_eq!(items[2]["reason"], "no_opt_in");
    assert_eq!(items[3]["error"]["code"], "invalid_request");

    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"user_id": USER}))
        .await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.body);
    assert_eq!(query.body["user_id"], USER);
    assert_eq!(query.body["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(query.body["group"], json!([query.body["subject"]]));
    let (status, dossier) = app
        .post_text("/v1/export/dossier", &t.auditor, &json!({"user_id": USER}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        dossier.lines().count(),
        4,
        "header, two entries, checkpoint"
    );
}

async fn entry_of(app: &TestApp, t: &Tenant, seq: u64) -> Value {
    entry(app, t, seq).await
}

/// Erasing any identity of a group erases and suppresses the whole group.
#[both]
async fn erasing_one_identity_erases_its_whole_group() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let with_parent = From {
        wa_id: Some(WA_ID),
        user_id: Some(USER),
        parent: Some(PARENT),
    };
    whatsapp(&app, &said(with_parent, "wamid.e1", "JOIN MAKRO", 100)).await;
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER, PARENT]).await,
        ["allowed", "allowed", "allowed"]
    );
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"user_id": PARENT}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let size = log_size(&app, &t).await;
    // Two links and the opt-in, then the opt-out and one erasure per subject.
    assert_eq!(size, 7);
    let mut erasures = 0;
    for seq in 0..size {
        let e = entry(&app, &t, seq).await;
        assert_eq!(e["openings"]["erased"], true, "seq {seq}: {e}");
        assert_eq!(e["openings"]["subject"], Value::Null);
        erasures += usize::from(e["entry"]["type"] == "erasure");
    }
    assert_eq!(erasures, 3);
    assert_eq!(erased.body["seq"], size - 1, "the last erasure entry");
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER, PARENT]).await,
        ["opted_out", "opted_out", "opted_out"],
        "every identity of the group is suppressed"
    );
    for asked in [json!({"number": PHONE}), json!({"user_id": USER})] {
        let gone = app.post("/v1/subjects/query", &t.auditor, &asked).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    }
    // A later opt-in by the number starts over.
    app.recorded_opt_in(&t, {
        let mut body = web_opt_in(PHONE, "Makro", &["marketing"]);
        body["captured_at"] = json!(at(1));
        body
    })
    .await;
    assert_eq!(decided(&app, &t, PHONE).await, "allowed");
    export_verifies(&app, &t).await;
    verify_db_passes(&app).await;
}

/// Wave-1 aliases (a user id stored beside a number) become one
/// `identity_linked` entry each at upgrade, once: what a start finds in
/// the database is migrated before the service answers (docs/identities.md).
#[both]
async fn wave_one_aliases_become_links_once() {
    use consent_ledger::domain::time::Timestamp;
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::subject_aliases;
    use diesel::{ExpressionMethods, RunQueryDsl};
    let app = spawn_app().await;
    let t = configured(&app).await;
    let mut opt_in = web_opt_in(PHONE, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(at(-120));
    app.recorded_opt_in(&t, opt_in).await;
    assert_eq!(decided(&app, &t, USER).await, "no_opt_in");
    let stored_at = Timestamp::now().plus_millis(-90_000);
    let target = app.database_target();
    tokio::task::spawn_blocking(move || {
        let mut conn = establish(&target).expect("connect");
        for (user_id, e164) in [(USER, PHONE), ("not an id", PHONE)] {
            diesel::insert_into(subject_aliases::table)
                .values((
                    subject_aliases::tenant_id.eq("makro"),
                    subject_aliases::user_id.eq(user_id),
                    subject_aliases::e164.eq(e164),
                    subject_aliases::updated_at.eq(stored_at.millis()),
                ))
                .execute(&mut conn)
                .expect("a wave-1 alias");
        }
    })
    .await
    .expect("aliases stored");
    // A restart (a second instance on the same database) migrates them;
    // another one finds nothing left to migrate.
    let restarted = app.second_instance().await;
    let after_first = log_size(&restarted, &t).await;
    let again = app.second_instance().await;
    let migrated = (after_first - 1, log_size(&again, &t).await - after_first);
    assert_eq!(migrated, (1, 0), "one link, once");
    assert_eq!(log_size(&app, &t).await, 2);
    let stored: i64 = {
        use consent_ledger::store::schema::subject_aliases;
        use diesel::{QueryDsl, RunQueryDsl};
        let mut conn = establish(&app.database_target()).expect("connect");
        subject_aliases::table
            .count()
            .get_result(&mut conn)
            .expect("count")
    };
    assert_eq!(stored, 0, "every alias moved (the malformed one dropped)");
    let link = entry(&app, &t, 1).await;
    assert_eq!(link["entry"]["type"], "identity_linked");
    assert_eq!(link["entry"]["collector"], "system:migration");
    assert_eq!(link["entry"]["captured_at"], stored_at.to_string());
    assert_eq!(link["openings"]["subject"]["e164"], PHONE);
    assert_eq!(link["openings"]["linked"]["user_id"], USER);
    assert_eq!(
        link["openings"]["evidence"]["body"],
        json!({"reason": "migrated alias"})
    );
    assert_eq!(decided(&app, &t, USER).await, "allowed", "one person now");
    export_verifies(&app, &t).await;
}

/// A group of links alone (no consent ever given) counts for retention
/// from its last link, and retention erases the whole group (docs/privacy.md): an `erasure` entry of reason `retention` per subject.
#[both]
async fn retention_erases_a_group_of_links_alone() {
    use consent_ledger::services::housekeeping::Budget;
    let app = spawn_app().await;
    let t = configured(&app).await;
    let patched = app
        .patch(
            "/v1/tenant",
            &t.admin,
            &json!({"evidence_retention_days": 1}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let recent = number_and_user("5511911112222", "BR.4242");
    whatsapp(&app, &said(recent, "wamid.r1", "hello", 3_600)).await;
    let old = number_and_user(WA_ID, USER);
    whatsapp(&app, &said(old, "wamid.r2", "hello", 2 * 86_400)).await;
    assert_eq!(log_size(&app, &t).await, 2, "two links");
    let report = crate::retention::run_housekeeping(&app, Budget::default());
    assert_eq!(report.erased, 1, "{report:?}");
    assert_eq!(
        log_size(&app, &t).await,
        4,
        "one erasure per subject of the old group"
    );
    for seq in [2, 3] {
        let e = entry(&app, &t, seq).await;
        assert_eq!(e["entry"]["type"], "erasure");
        assert_eq!(e["entry"]["reason"], "retention");
        assert_eq!(e["entry"]["collector"], "system:retention");
    }
    assert_eq!(entry(&app, &t, 1).await["openings"]["erased"], true);
    assert_eq!(
        entry(&app, &t, 0).await["openings"]["erased"],
        false,
        "a recent link stays"
    );
    // Retention suppresses nothing: the identities are merely unknown again.
    assert_eq!(
        decisions(&app, &t, &[PHONE, USER]).await,
        ["no_opt_in", "no_opt_in"]
    );
}

/// WhatsApp's own marketing stop from a person known only by user id is
/// recorded on the user id, and its resume lifts it.
#[both]
async fn a_marketing_stop_by_user_id_alone_is_recorded() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(&app, &said(user(USER), "wamid.m1", "JOIN MAKRO", 300)).await;
    assert_eq!(decided(&app, &t, USER).await, "allowed");
    let preference = |value: &str, ago: i64| {
        let mut payload = crate::channels::fixture("user_preferences", now_secs() - ago);
        let v = &mut payload["entry"][0]["changes"][0]["value"];
        v["contacts"][0] = json!({"profile": {"name": "Ana"}, "user_id": USER});
        let item = &mut v["user_preferences"][0];
        item.as_object_mut().expect("an item").remove("wa_id");
        item["value"] = json!(value);
        payload
    };
    whatsapp(&app, &preference("stop", 200)).await;
    assert_eq!(decided(&app, &t, USER).await, "opted_out");
    let stop = entry(&app, &t, 1).await;
    assert_eq!(stop["openings"]["subject"]["user_id"], USER);
    assert_eq!(stop["openings"]["evidence"]["body"]["preference"], "stop");
    whatsapp(&app, &preference("resume", 100)).await;
    assert_eq!(decided(&app, &t, USER).await, "allowed");
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(letters.body["dead_letters"], json!([]));
}

/// An opt-out an older version kept while it waited for its user id to
/// arrive with a number is readable under today's rules: applied at start
/// on the user id, with its own time, naming the dead letter.
#[both]
async fn opt_outs_kept_for_a_user_id_apply_at_start() {
    use consent_ledger::domain::purpose::Purpose;
    use consent_ledger::domain::time::Timestamp;
    use consent_ledger::keys::MasterKey;
    use consent_ledger::providers::letter::{LetterPayload, MessageLetter};
    use consent_ledger::providers::message::Provider;
    use consent_ledger::providers::whatsapp_payload::Content;
    use consent_ledger::services::dead_letters::apply_letters_waiting_for_user_ids;
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::dead_letters::{keep, Letter};
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(&app, &said(user(USER), "wamid.k1", "JOIN MAKRO", 600)).await;
    assert_eq!(decided(&app, &t, USER).await, "allowed");
    let sent_at = Timestamp::from_millis((now_secs() - 300) * 1000);
    let target = app.database_target();
    let key_file = app.data_dir().join("master.key");
    let applied = tokio::task::spawn_blocking(move || {
        let mut conn = establish(&target).expect("connect");
        let (master, created) = MasterKey::load_or_generate(&key_file).expect("master key");
        assert!(!created);
        let letter = Letter {
            provider: Provider::WhatsApp,
            reason: "unknown_sender",
            business: Some(PHONE_NUMBER_ID),
            payload: LetterPayload::Message(MessageLetter {
                provider: "whatsapp".into(),
                message_id: "wamid.kept".into(),
                business: Some(PHONE_NUMBER_ID.into()),
                from: None,
                user_id: Some(USER.into()),
                parent_user_id: None,
                waba: Some(WABA.into()),
                captured_at: Some(sent_at),
                content: Content::Text {
                    body: "STOP".into(),
                    reply_to: None,
                },
                opt_out: Some(Purpose::ALL.to_vec()),
                heard: Default::default(),
                system: None,
            }),
            waits_for: Some(USER),
        };
        keep(
            &mut conn,
            &master,
            &tenant_id("makro"),
            letter,
            Timestamp::now(),
        )
        .expect("kept");
        let first = apply_letters_waiting_for_user_ids(&mut conn, &master, Timestamp::now());
        let again = apply_letters_waiting_for_user_ids(&mut conn, &master, Timestamp::now());
        (first.expect("applied"), again.expect("nothing left"))
    })
    .await
    .expect("ran");
    assert_eq!(applied.0.len(), 1, "{applied:?}");
    assert!(applied.1.is_empty(), "applied once");
    assert_eq!(decided(&app, &t, USER).await, "opted_out");
    let stop = entry(&app, &t, applied.0[0]).await;
    assert_eq!(
        stop["entry"]["captured_at"],
        sent_at.to_string(),
        "its own time"
    );
    assert_eq!(stop["openings"]["subject"]["user_id"], USER);
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    let id = letters.body["dead_letters"][0]["id"].as_i64().expect("id");
    assert_eq!(
        stop["openings"]["evidence"]["body"]["dead_letter_id"],
        id.to_string()
    );
    assert_eq!(
        letters.body["dead_letters"][0]["resolved_seq"],
        applied.0[0]
    );
}

/// `user_changed_user_id` closes the group of the user id it came from:
/// opted out of everything, and the same user id arriving again starts a
/// new subject with nothing carried over.
#[both]
async fn a_changed_user_id_closes_its_group() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(&app, &said(user(USER), "wamid.c1", "JOIN MAKRO", 300)).await;
    assert_eq!(decided(&app, &t, USER).await, "allowed");
    let message = json!({"id": "wamid.c2", "timestamp": (now_secs() - 200).to_string(),
        "type": "system", "system": {"body": "User changed their user id",
            "type": "user_changed_user_id", "user_id": "BR.2002"}});
    whatsapp(&app, &notification(WABA, user(USER), message)).await;
    assert_eq!(decided(&app, &t, USER).await, "opted_out");
    let closing = entry(&app, &t, 1).await;
    assert_eq!(closing["openings"]["subject"]["user_id"], USER);
    assert_eq!(
        closing["openings"]["evidence"]["body"]["system"],
        "user_changed_user_id"
    );
    // Meta retries the system message: nothing more.
    whatsapp(
        &app,
        &notification(WABA, user(USER), {
            json!({"id": "wamid.c2", "timestamp": (now_secs() - 200).to_string(),
            "type": "system", "system": {"type": "user_changed_user_id"}})
        }),
    )
    .await;
    assert_eq!(log_size(&app, &t).await, 2);
    // Any arrival starts a new subject, a plain message too
    // (docs/identities.md): nothing carried over, so no opt-in, and nothing in the log.
    whatsapp(&app, &said(user(USER), "wamid.c3", "hello", 100)).await;
    assert_eq!(decided(&app, &t, USER).await, "no_opt_in");
    assert_eq!(log_size(&app, &t).await, 2);
    whatsapp(&app, &said(user(USER), "wamid.c4", "JOIN MAKRO", 50)).await;
    assert_eq!(decided(&app, &t, USER).await, "allowed", "a new subject");
    let fresh = entry(&app, &t, 2).await;
    assert_ne!(fresh["entry"]["subject"], closing["entry"]["subject"]);
}

/// A dossier holds the entries of the identity's whole group, which may
/// span several subjects (a number and its user id): `verify` accepts it,
/// and still refuses an entry of a subject outside the group.
#[both]
async fn a_dossier_of_a_linked_group_verifies() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    whatsapp(&app, &said(user(USER), "wamid.d1", "JOIN MAKRO", 600)).await;
    let mut opt_in = web_opt_in(PHONE, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(at(-400));
    app.recorded_opt_in(&t, opt_in).await;
    whatsapp(
        &app,
        &said(number_and_user(WA_ID, USER), "wamid.d2", "hi", 300),
    )
    .await;
    // Someone else's entry, in the same log.
    app.recorded_opt_in(&t, web_opt_in("+4915112345670", "Makro", &["marketing"]))
        .await;
    let vkey = app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (status, dossier) = app
        .post_text("/v1/export/dossier", &t.auditor, &json!({"number": PHONE}))
        .await;
    assert_eq!(status, StatusCode::OK, "{dossier}");
    let entries = dossier.lines().filter(|l| l.contains("\"entry\"")).count();
    assert_eq!(
        entries, 3,
        "the user id's opt-in, the number's and the link: {dossier}"
    );
    let path = write_file(dir.path(), "dossier.ndjson", &dossier);
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    // An entry of another group spliced in fails.
    let (_, export) = app.get_text("/v1/export", &t.auditor).await;
    let stranger = export
        .lines()
        .rfind(|l| l.contains("\"entry\""))
        .unwrap()
        .to_owned();
    let mut lines: Vec<String> = dossier.lines().map(str::to_owned).collect();
    let at = lines.len() - 1;
    lines.insert(at, stranger);
    let path = write_file(dir.path(), "spliced.ndjson", &(lines.join("\n") + "\n"));
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 1, "{out}{err}");
}
