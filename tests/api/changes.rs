//! The change feed (docs/changes.md, SPEC section 13): a log's consent
//! changes in log order, each with its group's current identities; a
//! closing reads as `group_closed`, an erasure as keyed hashes of whom it
//! erased; `wait` long-polls; cursors hold across restarts and instances;
//! every read is audited; bad cursors and waits are precise 422s.

use crate::channels::{configured, log_size, now_secs, text, whatsapp};
use crate::helpers::*;
use crate::identities::{number_and_user, said, user, From, PHONE, USER, WA_ID};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

/// A key of the tenant with the role `subscriber` alone.
async fn subscriber(app: &TestApp, t: &Tenant) -> String {
    app.new_key(&t.admin, &["subscriber"]).await
}

/// One read of the feed by a subscriber: the whole answer.
async fn read(app: &TestApp, subscriber: &str, query: &str) -> Value {
    let answer = app.get(&format!("/v1/changes{query}"), subscriber).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// The feed read to its end from its start, `limit` entries a read.
async fn whole_feed(app: &TestApp, subscriber: &str, limit: u64) -> (Vec<Value>, String) {
    let mut changes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor
            .as_ref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let page = read(app, subscriber, &format!("?limit={limit}{after}")).await;
        let next = page["next_cursor"].as_str().expect("a cursor").to_owned();
        changes.extend(page["changes"].as_array().expect("changes").iter().cloned());
        if cursor.as_deref() == Some(next.as_str()) {
            return (changes, next);
        }
        cursor = Some(next);
    }
}

fn types(changes: &[Value]) -> Vec<&str> {
    changes
        .iter()
        .map(|c| c["type"].as_str().expect("a type"))
        .collect()
}

/// A WhatsApp story: an opt-in by a number and its user id, a STOP by the
/// number, a START by the user id, then the user id arriving with another
/// number (its group closes). The feed tells the four changes in log
/// order, no link, each with the group's identities, and the same whether
/// read at once or one entry at a time.
#[both]
async fn the_feed_tells_a_whatsapp_story_in_log_order() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let sub = subscriber(&app, &t).await;
    let both = number_and_user(WA_ID, USER);
    whatsapp(&app, &said(both, "wamid.f1", "JOIN MAKRO", 400)).await;
    let number_only = From {
        wa_id: Some(WA_ID),
        ..From::default()
    };
    whatsapp(&app, &said(number_only, "wamid.f2", "STOP", 300)).await;
    whatsapp(&app, &said(user(USER), "wamid.f3", "START", 200)).await;
    let moved = number_and_user("5511912345678", USER);
    whatsapp(&app, &said(moved, "wamid.f4", "hi", 100)).await;
    let size = log_size(&app, &t).await;

    let page = read(&app, &sub, "").await;
    let changes = page["changes"].as_array().expect("changes").clone();
    assert_eq!(
        types(&changes),
        ["opt_in", "opt_out", "opt_out_lifted", "group_closed"],
        "{page}"
    );
    assert_eq!(page["next_cursor"], format!("c1-{size:x}"));
    let seqs: Vec<u64> = changes.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "log order: {seqs:?}");
    for change in &changes {
        let seq = change["seq"].as_u64().unwrap();
        assert_eq!(change["cursor"], format!("c1-{:x}", seq + 1));
        let identities = change["identities"].as_array().expect("identities");
        assert!(
            identities.contains(&json!({"number": PHONE})),
            "the closed group still holds the old number: {change}"
        );
        assert!(identities.contains(&json!({"user_id": USER})), "{change}");
        assert!(change["recorded_at"].is_string(), "{change}");
        assert!(change["captured_at"].is_string(), "{change}");
        assert!(change.get("identity_hashes").is_none(), "{change}");
    }
    let opt_in = &changes[0];
    assert_eq!(opt_in["brand"], "Makro");
    assert!(opt_in["purposes"].as_array().is_some_and(|p| !p.is_empty()));
    assert!(opt_in["message_channels"].is_array());
    assert!(changes[1]["brand"].is_null(), "an opt-out names no brand");
    assert!(changes[1]["purposes"].is_array());
    let lift = &changes[2];
    assert!(lift["purposes"].is_null() && lift["message_channels"].is_null());
    assert_eq!(
        changes[3]["purposes"],
        json!(["authentication", "marketing", "utility"])
    );

    let (one_by_one, last) = whole_feed(&app, &sub, 1).await;
    assert_eq!(one_by_one, changes, "paging gives the same changes");
    assert_eq!(last, page["next_cursor"].as_str().unwrap());
}

/// A confirmation is a change of its own.
#[both]
async fn a_confirmation_is_a_change() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let sub = subscriber(&app, &t).await;
    let required = json!({"require_confirmation_for": ["web"]});
    let patched = app.patch("/v1/tenant", &t.admin, &required).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let answer = app
        .opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let code = answer.body["confirmation"]["code"].as_str().expect("code");
    let reply = text(
        &NUMBER[1..],
        "wamid.c1",
        &format!("CONFIRM {code}"),
        false,
        now_secs() - 2,
    );
    whatsapp(&app, &reply).await;
    let page = read(&app, &sub, "").await;
    let changes = page["changes"].as_array().expect("changes");
    assert_eq!(types(changes), ["opt_in", "confirmation"], "{page}");
    assert_eq!(changes[1]["identities"], json!([{"number": NUMBER}]));
    assert!(changes[1]["brand"].is_null() && changes[1]["purposes"].is_null());
}

fn hmac_hex(key_hex: &str, identity: &str) -> String {
    let key = hex::decode(key_hex).expect("the key is hex");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(identity.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An erasure carries the HMAC of the erased number under the feed key an
/// admin reads, never the number; every change of the erased group then
/// lists no identity. Reads of the feed and of its key are audited.
#[both]
async fn an_erasure_is_told_by_a_keyed_hash_and_its_group_loses_its_identities() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let sub = subscriber(&app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let kept = "+4915187654321";
    app.recorded_opt_in(&t, web_opt_in(kept, "Makro", &["utility"]))
        .await;
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": NUMBER}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let erasure_seq = erased.body["seq"].as_u64().expect("seq");

    let key = app.get("/v1/changes/key", &t.admin).await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
    assert_eq!(key.body["algorithm"], "HMAC-SHA256");
    let key_hex = key.body["key"].as_str().expect("a key");
    assert_eq!(key_hex.len(), 64);
    let refused = app.get("/v1/changes/key", &sub).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let page = read(&app, &sub, "").await;
    let text = page.to_string();
    assert!(!text.contains(&NUMBER[1..]), "no erased number: {text}");
    let changes = page["changes"].as_array().expect("changes");
    let erasure = changes.last().expect("the erasure");
    assert_eq!(erasure["type"], "erasure", "{page}");
    assert_eq!(erasure["seq"], erasure_seq);
    assert_eq!(
        erasure["identity_hashes"],
        json!([hmac_hex(key_hex, NUMBER)])
    );
    assert!(erasure["captured_at"].is_null() && erasure["purposes"].is_null());
    for change in &changes[..changes.len() - 1] {
        if change["seq"] == 1 {
            assert_eq!(change["identities"], json!([{"number": kept}]));
        } else {
            assert_eq!(change["identities"], json!([]), "{change}");
        }
    }

    let trail = app.get("/v1/audit-events", &t.admin).await;
    let events = trail.body["audit_events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"changes_key.read"), "{kinds:?}");
    let feed_read = events
        .iter()
        .find(|e| e["kind"] == "changes.read")
        .expect("the read is audited");
    assert_eq!(feed_read["details"]["after"], "c1-0");
    assert_eq!(feed_read["details"]["next"], page["next_cursor"]);
    assert_eq!(feed_read["details"]["changes"], changes.len());
}

/// A tenant with one opt-in of NUMBER, a subscriber key, and the cursor
/// its first read ended at.
async fn read_past_an_opt_in(app: &TestApp) -> (Tenant, String, String) {
    let t = app.tenant("makro", "Makro").await;
    let sub = subscriber(app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    let cursor = read(app, &sub, "").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    (t, sub, cursor)
}

/// A read with `wait` that finds nothing waits, and answers the change
/// that commits meanwhile; one that finds nothing until its wait ends
/// answers no change and the same cursor.
#[both(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_answers_the_change_that_commits_during_it() {
    let app = spawn_app().await;
    let (t, sub, cursor) = read_past_an_opt_in(&app).await;
    let quiet = read(&app, &sub, &format!("?after={cursor}&wait=1")).await;
    assert_eq!(quiet["changes"], json!([]));
    assert_eq!(quiet["next_cursor"], cursor);

    let url = app.url(&format!("/v1/changes?after={cursor}&wait=30"));
    let request = app.client.get(url).bearer_auth(&sub).send();
    let waiting = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the read waits for a change");
    let seq = app.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    let answer = waiting.await.unwrap().expect("answered");
    assert_eq!(answer.status(), StatusCode::OK);
    let page: Value = answer.json().await.unwrap();
    assert_eq!(types(page["changes"].as_array().unwrap()), ["opt_out"]);
    assert_eq!(page["changes"][0]["seq"], seq);
}

/// A cursor from one instance reads on from the same place on another
/// (PostgreSQL: a second instance on one database; SQLite: the restarted
/// service), and the first instance sees what the second recorded.
#[both]
async fn a_cursor_holds_across_instances_and_restarts() {
    let app = spawn_app().await;
    let (t, sub, cursor) = read_past_an_opt_in(&app).await;
    let other = app.second_instance().await;
    let seq = other.recorded_opt_out(&t, api_opt_out(NUMBER)).await;
    for instance in [&other, &app] {
        let page = read(instance, &sub, &format!("?after={cursor}")).await;
        let changes = page["changes"].as_array().unwrap();
        assert_eq!(types(changes), ["opt_out"], "{page}");
        assert_eq!(changes[0]["seq"], seq);
        assert_eq!(changes[0]["identities"], json!([{"number": NUMBER}]));
    }
}

/// What is not a cursor, a wait or a limit is a 422 naming its field; a
/// cursor beyond the log's end too; the roles are the subscriber's (and
/// the admin's) alone.
#[both]
async fn bad_reads_are_precise_422s() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let sub = subscriber(&app, &t).await;
    app.recorded_opt_in(&t, web_opt_in(NUMBER, "Makro", &["marketing"]))
        .await;
    for (query, field, code) in [
        ("?after=nope", "after", "invalid_cursor"),
        ("?after=c1-", "after", "invalid_cursor"),
        ("?after=c1-2", "after", "out_of_range"),
        ("?wait=31", "wait", "out_of_range"),
        ("?wait=-1", "wait", "out_of_range"),
        ("?limit=0", "limit", "out_of_range"),
        ("?limit=1001", "limit", "out_of_range"),
        ("?since=c1-0", "query", "invalid_value"),
    ] {
        let answer = app.get(&format!("/v1/changes{query}"), &sub).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(answer.code(), "invalid_request", "{query}");
        assert_eq!(answer.field_code(field).as_deref(), Some(code), "{query}");
    }
    assert_eq!(read(&app, &sub, "?after=c1-1").await["changes"], json!([]));
    let admin = app.get("/v1/changes", &t.admin).await;
    assert_eq!(admin.status, StatusCode::OK);
    for key in [&t.sender, &t.auditor, &t.collector] {
        let refused = app.get("/v1/changes", key).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
}
