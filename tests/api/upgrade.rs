//! Stored data moves with the rules: a database as the version before
//! keyed identities left it (its last migration reverted, then rows
//! written in that version's shapes: windows by identity, a dead letter
//! with a legacy `wa_id`, an idempotency record with a plain SHA-256) is
//! upgraded by a start, on either backend.

use crate::channels::{configured, now_secs, text, whatsapp};
use crate::helpers::*;
use consent_ledger::keys::MasterKey;
use consent_ledger::providers::letter::LetterPayload;
use consent_ledger::store::connection::{establish, revert_through};
use consent_ledger::store::dead_letters::{open_letter, seal_letter};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

/// Has a subject (an opt-in) and an open window, stored by identity.
const OPTED_IN: &str = "+4915112340001";
/// Wrote an hour ago and holds nothing else: no subject before the upgrade.
const WROTE: &str = "+4915112340002";
/// Wrote two days ago: its window closed long ago.
const WROTE_LONG_AGO: &str = "+4915112340003";
/// A Brazilian mobile whose STOP came in the legacy form, no ninth digit.
const BRAZIL: &str = "+5511987654321";
const BRAZIL_LEGACY: &str = "551187654321";
const UNKNOWN_BUSINESS: &str = "999888777666555";

fn marketing(number: &str) -> Value {
    json!({"number": number, "purpose": "marketing", "brand": "Makro"})
}

/// Writes, behind the app's back, what the version before this upgrade
/// kept: its schema (the migrations from `2026-12-07-000009` on reverted)
/// and its rows.
fn downgrade(
    target: &consent_ledger::config::DatabaseTarget,
    master: &MasterKey,
    opt_in_body: &Value,
) {
    use consent_ledger::store::schema::{dead_letters, idempotency_keys};
    let mut conn = establish(target).expect("connect");
    revert_through(&mut conn, "2026-12-07-000009").expect("reverted");
    let hour = 3_600_000;
    let now = now_secs() * 1000;
    for (identity, at) in [
        (OPTED_IN, now - 60_000),
        (WROTE, now - hour),
        (WROTE_LONG_AGO, now - 48 * hour),
    ] {
        diesel::sql_query(format!(
            "INSERT INTO windows (tenant_id, identity, phone_number_id, last_inbound_at) \
             VALUES ('makro', '{identity}', '{}', {at})",
            crate::channels::PHONE_NUMBER_ID
        ))
        .execute(&mut conn)
        .expect("a window by identity");
    }
    // The idempotency record kept the plain hash of the body.
    let plain = hex::encode(sha2::Sha256::digest(
        serde_json::to_vec(opt_in_body).unwrap(),
    ));
    diesel::update(idempotency_keys::table)
        .set(idempotency_keys::request_sha256.eq(&plain))
        .execute(&mut conn)
        .expect("a plain hash");
    // The letter kept the sender as WhatsApp wrote it.
    let (id, sealed): (i64, String) = dead_letters::table
        .select((dead_letters::id, dead_letters::payload_sealed))
        .first(&mut conn)
        .expect("the letter");
    let json = open_letter(master, &tenant_id("makro"), &sealed).expect("opens");
    let mut payload: LetterPayload = serde_json::from_value(json).expect("a letter");
    let LetterPayload::Message(message) = &mut payload else {
        panic!("a message letter");
    };
    message.from = Some(BRAZIL_LEGACY.to_owned());
    diesel::update(dead_letters::table.find(id))
        .set(dead_letters::payload_sealed.eq(seal_letter(master, &tenant_id("makro"), &payload)))
        .execute(&mut conn)
        .expect("a legacy letter");
}

fn master_key(app: &TestApp) -> MasterKey {
    let path = app.data_dir().join("master.key");
    MasterKey::load_or_generate(&path)
        .expect("the master key")
        .0
}

#[both(pgbouncer)]
async fn a_database_of_the_version_before_is_upgraded_at_start() {
    let app = spawn_app().await;
    let t = configured(&app).await;
    let opt_in = web_opt_in(OPTED_IN, "Makro", &["marketing"]);
    let key = [("Idempotency-Key", "upgrade-1")];
    let first = app
        .post_with("/v1/opt-ins", &t.collector, &opt_in, &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let mut stop = text(
        BRAZIL_LEGACY,
        "wamid.legacy",
        "STOP",
        false,
        now_secs() - 30,
    );
    stop["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!(UNKNOWN_BUSINESS);
    whatsapp(&app, &stop).await;
    let before = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(
        before.body["dead_letters"].as_array().map(Vec::len),
        Some(1)
    );

    let (target, master, body) = (app.database_target(), master_key(&app), opt_in.clone());
    tokio::task::spawn_blocking(move || downgrade(&target, &master, &body))
        .await
        .expect("downgraded");
    let upgraded = app.second_instance().await;

    // Subjects are found by their keyed identity hash, filled at start.
    assert_eq!(upgraded.reason(&t, marketing(OPTED_IN)).await, "allowed");
    for (number, open) in [(OPTED_IN, true), (WROTE, true), (WROTE_LONG_AGO, false)] {
        let decision = upgraded.check(&t, marketing(number)).await;
        assert_eq!(
            decision.body["window"]["open"], open,
            "{number}: {}",
            decision.body
        );
    }
    // The plain hash stored before still matches its retry.
    let retry = upgraded
        .post_with("/v1/opt-ins", &t.collector, &opt_in, &key)
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.body, first.body);
    // The letter now keeps the canonical number, and goes with its erasure.
    let id = before.body["dead_letters"][0]["id"].as_i64().expect("id");
    let letter = upgraded
        .get(&format!("/v1/dead-letters/{id}"), &t.admin)
        .await;
    assert_eq!(
        letter.body["payload"]["from"],
        &BRAZIL[1..],
        "{}",
        letter.body
    );
    upgraded
        .recorded_opt_in(&t, web_opt_in(BRAZIL, "Makro", &["marketing"]))
        .await;
    let erased = upgraded
        .post("/v1/subjects/erase", &t.admin, &json!({"number": BRAZIL}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let letters = upgraded.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(letters.body["dead_letters"], json!([]));
    verify_db_passes(&app).await;
}
