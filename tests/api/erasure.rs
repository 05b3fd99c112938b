//! Erasure on request and suppression (docs/decisions.md rule 1, 4 and 11):
//! the number, its salts and its evidence bodies are gone from the
//! database, every artefact still verifies, and the number stays opted out
//! (across instances) until an opt-in captured after the erasure.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ERASED: &str = "+4915123456789";
const KEPT: &str = "+4915187654321";
/// Only the erased number's evidence carries it.
const PROBE_AGENT: &str = "ErasureProbe/7.3 (evidence body)";

fn probe_opt_in(number: &str, captured_at: &str) -> Value {
    json!({
        "number": number,
        "channel": "web",
        "company_name_shown": "Makro",
        "consent_text": "Yes, I want offers from Makro on WhatsApp. Reply STOP to end.",
        "purposes": ["marketing", "utility"],
        "captured_at": captured_at,
        "evidence": {"page_url": "https://shop.example/newsletter", "ip": "198.51.100.23", "user_agent": PROBE_AGENT}
    })
}

/// Erases a number with the tenant's admin key.
async fn erase(app: &TestApp, t: &Tenant, number: &str) -> Answer {
    let body = json!({"number": number});
    app.post("/v1/subjects/erase", &t.admin, &body).await
}

fn marketing_check(number: &str) -> Value {
    json!({"number": number, "purpose": "marketing", "brand": "Makro"})
}

/// What must not be found anywhere after the erasure: the number with and
/// without its `+`, its subject salt, every evidence salt and body.
async fn secrets_of(app: &TestApp, t: &Tenant, seqs: &[u64]) -> Vec<String> {
    secrets_of_number(app, t, ERASED, PROBE_AGENT, seqs).await
}

/// What must not be found of `number` once forgotten: it with and without
/// its `+`, the `probe` in its evidence, and the salts and evidence bodies
/// of the entries `seqs`.
pub(crate) async fn secrets_of_number(
    app: &TestApp,
    t: &Tenant,
    number: &str,
    probe: &str,
    seqs: &[u64],
) -> Vec<String> {
    let mut secrets = vec![number.to_owned(), number[1..].to_owned(), probe.to_owned()];
    for seq in seqs {
        let entry = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
        assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
        let openings = &entry.body["openings"];
        assert_eq!(openings["subject"]["e164"], number);
        secrets.push(openings["subject"]["salt"].as_str().unwrap().to_owned());
        secrets.push(openings["evidence"]["salt"].as_str().unwrap().to_owned());
        secrets.push(openings["evidence"]["body"].to_string());
    }
    secrets.sort();
    secrets.dedup();
    secrets
}

/// Everything the database holds, as bytes: SQLite's main file and WAL
/// read raw; PostgreSQL's tables dumped (after the erasure's vacuum).
pub(crate) fn database_bytes(app: &TestApp) -> Vec<u8> {
    match app.database_url() {
        None => {
            let db = app.data_dir().join("consent-ledger.db");
            let mut bytes = std::fs::read(&db).expect("the database file");
            if let Ok(wal) = std::fs::read(app.data_dir().join("consent-ledger.db-wal")) {
                bytes.extend(wal);
            }
            bytes
        }
        Some(url) => crate::postgres::dump_tables(&url).into_bytes(),
    }
}

pub(crate) fn found(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Erasure forgets the number, its salts and evidence; the log, its
/// proofs and its exports still verify; the number stays opted out.
#[both(pgbouncer)]
async fn erasure_forgets_the_number_and_every_artefact_still_verifies() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    // The erased number's history: an opt-in (with an Idempotency-Key), a
    // partial opt-out, a window; another number's entries must stay open.
    let first = app
        .post_with(
            "/v1/opt-ins",
            &t.collector,
            &probe_opt_in(ERASED, &app.at(-120)),
            &[("Idempotency-Key", "erasure-probe-1")],
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let kept = app
        .recorded_opt_in(&t, web_opt_in(KEPT, "Makro", &["marketing"]))
        .await;
    let mut partial = api_opt_out(ERASED);
    partial["purposes"] = json!(["utility"]);
    let second = app.recorded_opt_out(&t, partial).await;
    let window = app
        .post(
            "/v1/interactions",
            &t.collector,
            &json!({"number": ERASED, "received_at": app.at(-30)}),
        )
        .await;
    assert_eq!(window.status, StatusCode::OK, "{}", window.body);
    let first_seq = first.body["seq"].as_u64().unwrap();
    let secrets = secrets_of(&app, &t, &[first_seq, second]).await;
    let (_, before) = app.get_text("/v1/log/checkpoint", &t.auditor).await;

    let erased = app
        .post_with(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"number": ERASED, "reason": "asked by email"}),
            &[("Idempotency-Key", "erase-1")],
        )
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    // The opt-out of everything, then the erasure entry.
    let erasure_seq = erased.body["seq"].as_u64().unwrap();
    assert_eq!(erasure_seq, 4);
    let opt_out = app.get("/v1/entries/3", &t.auditor).await;
    assert_eq!(opt_out.body["entry"]["type"], "opt_out");
    assert_eq!(opt_out.body["entry"]["channel"], "api");
    assert_eq!(
        opt_out.body["entry"]["collector"],
        format!("key_{}", &t.admin[4..16])
    );
    assert_eq!(
        opt_out.body["entry"]["captured_at"],
        opt_out.body["entry"]["recorded_at"]
    );
    assert_eq!(
        opt_out.body["entry"]["purposes"],
        json!(["authentication", "marketing", "utility"])
    );
    let entry = app
        .get(&format!("/v1/entries/{erasure_seq}"), &t.auditor)
        .await;
    assert_eq!(entry.body["entry"]["type"], "erasure");
    assert_eq!(entry.body["entry"]["reason"], "request");
    assert_eq!(entry.body["entry"]["subject"], first.body["subject"]);
    assert_eq!(
        entry.body["openings"],
        json!({"subject": null, "evidence": null, "consent_text": null, "erased": true})
    );
    // A replay answers the same without erasing twice.
    let replay = app
        .post_with(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"number": ERASED, "reason": "asked by email"}),
            &[("Idempotency-Key", "erase-1")],
        )
        .await;
    assert_eq!(
        (replay.status, &replay.body),
        (StatusCode::CREATED, &erased.body)
    );
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    // Nothing of the person is left in the database.
    let bytes = database_bytes(&app);
    for secret in &secrets {
        assert!(
            !found(&bytes, secret),
            "{secret:?} is still in the database"
        );
    }
    // The other number's openings are untouched.
    let other = app.get(&format!("/v1/entries/{kept}"), &t.auditor).await;
    assert_eq!(other.body["openings"]["subject"]["e164"], KEPT);
    assert_eq!(other.body["openings"]["erased"], false);

    // Every artefact still verifies: verify-db, the export (whose
    // checkpoint is consistent with the one kept before), a receipt of an
    // erased entry, and the dossier of the other number.
    let (code, out, err) = run_cli(&["verify-db"], Some(&app.data_dir()));
    assert_eq!(code, 0, "{out}{err}");
    let vkey = app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = app.scratch();
    let kept_path = write_file(&dir, "before.checkpoint", &before);
    let (status, export) = app.get_text("/v1/export", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!export.contains(ERASED) && !export.contains(PROBE_AGENT));
    let path = write_file(&dir, "export.ndjson", &export);
    let (code, out, err) = run_cli(
        &["verify", &path, "--key", &vkey, "--trusted", &kept_path],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 entries (1 opened)"), "{out}");
    let receipt = app
        .get(&format!("/v1/entries/{first_seq}/receipt"), &t.auditor)
        .await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.body);
    assert_eq!(receipt.body["openings"]["erased"], true);
    let path = write_file(&dir, "receipt.json", &receipt.body.to_string());
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");
    let (status, dossier) = app
        .post_text("/v1/export/dossier", &t.auditor, &json!({"number": KEPT}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = write_file(&dir, "dossier.ndjson", &dossier);
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");

    // The number answers opted out, has no subject to query, and a second
    // erasure records nothing.
    let check = app.check(&t, marketing_check(ERASED)).await;
    assert_eq!(check.body["reason"], "opted_out", "{}", check.body);
    assert_eq!(check.body["window"]["open"], false);
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": ERASED}))
        .await;
    assert_eq!(query.status, StatusCode::NOT_FOUND);
    let size = crate::channels::log_size(&app, &t).await;
    let again = erase(&app, &t, ERASED).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, json!({"erased": true, "recorded": false}));
    assert_eq!(crate::channels::log_size(&app, &t).await, size);
    let never = erase(&app, &t, "+4915112345699").await;
    assert_eq!(never.status, StatusCode::NOT_FOUND, "{}", never.body);
    assert_eq!(app.reason(&t, marketing_check(KEPT)).await, "allowed");
}

/// After an erasure: an opt-in captured before it is refused (422
/// `suppressed`), an opt-out records nothing (200 `{"suppressed":true}`),
/// and an opt-in captured after it starts a new subject; on every instance.
#[both(pgbouncer)]
async fn a_suppressed_number_stays_opted_out_on_every_instance_until_a_later_opt_in() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    let first = app.opt_in(&t, probe_opt_in(ERASED, &app.at(-60))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let erased = erase(&app, &t, ERASED).await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let size = erased.body["seq"].as_u64().unwrap() + 1;

    // Another instance on the same database (on SQLite: a restart).
    let other = app.second_instance().await;
    for instance in [&app, &other] {
        assert_eq!(
            instance.reason(&t, marketing_check(ERASED)).await,
            "opted_out"
        );
        let old = instance.opt_in(&t, probe_opt_in(ERASED, &app.at(-1))).await;
        assert_eq!(old.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", old.body);
        assert_eq!(old.code(), "suppressed");
        let out = instance.opt_out(&t, api_opt_out(ERASED)).await;
        assert_eq!(
            (out.status, &out.body),
            (StatusCode::OK, &json!({"suppressed": true}))
        );
    }
    // Nothing was recorded by those.
    let (_, note) = app.get_text("/v1/log/checkpoint", &t.auditor).await;
    assert!(
        note.starts_with(&format!("ledger.test/makro\n{size}\n")),
        "{note}"
    );

    // An opt-in captured after the erasure starts a new subject.
    app.clock.advance(2_000);
    let fresh = app.opt_in(&t, probe_opt_in(ERASED, &app.at(0))).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
    assert_ne!(fresh.body["subject"], first.body["subject"]);
    assert_eq!(app.reason(&t, marketing_check(ERASED)).await, "allowed");
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": ERASED}))
        .await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.body);
    assert_eq!(query.body["history"].as_array().unwrap().len(), 1);
    // Now an opt-out records again.
    app.clock.advance(1_000);
    let mut later = api_opt_out(ERASED);
    later["captured_at"] = json!(app.at(0));
    let out = app.opt_out(&t, later).await;
    assert_eq!(out.status, StatusCode::CREATED, "{}", out.body);
    assert_eq!(app.reason(&t, marketing_check(ERASED)).await, "opted_out");
}

/// Only an admin erases; bad input is named; an unknown number is 404.
#[both(pgbouncer)]
async fn erasure_input_is_checked() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let unknown = erase(&app, &t, ERASED).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let bad = app
        .post("/v1/subjects/erase", &t.admin, &json!({"number": "12"}))
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_number")
    );
    let long = "x".repeat(501);
    let bad = app
        .post(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"number": ERASED, "reason": long}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.field_code("reason").as_deref(), Some("invalid_value"));
    let collector = app
        .post(
            "/v1/subjects/erase",
            &t.collector,
            &json!({"number": ERASED}),
        )
        .await;
    assert_eq!(collector.status, StatusCode::FORBIDDEN);
}

/// Webhooks follow the same rules: a STOP from an erased number records
/// nothing (the number is opted out already), while its message still
/// counts as a message; a START lifts nothing; a STOP sent to a business
/// number the tenant does not have keeps no dead letter that names it.
#[both(pgbouncer)]
async fn webhooks_from_an_erased_number_record_nothing() {
    use crate::channels::{configured, log_size, now_secs, text, whatsapp};
    let app = spawn_app().await;
    let t = configured(&app).await;
    let number = "+4915112345678";
    app.recorded_opt_in(&t, web_opt_in(number, "Makro", &["marketing"]))
        .await;
    let erased = erase(&app, &t, number).await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let size = log_size(&app, &t).await;
    let wa_id = &number[1..];
    whatsapp(
        &app,
        &text(wa_id, "wamid.erased.stop", "STOP", false, now_secs()),
    )
    .await;
    whatsapp(
        &app,
        &text(wa_id, "wamid.erased.start", "START", false, now_secs()),
    )
    .await;
    let mut elsewhere = text(wa_id, "wamid.erased.elsewhere", "STOP", false, now_secs());
    elsewhere["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("999888777666555");
    whatsapp(&app, &elsewhere).await;
    assert_eq!(log_size(&app, &t).await, size);
    assert_eq!(app.reason(&t, marketing_check(number)).await, "opted_out");
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(letters.status, StatusCode::OK);
    assert_eq!(letters.body["dead_letters"], json!([]), "{}", letters.body);
}

/// The number's history in one tenant: an old owner (with user id
/// `OLD_USER`) whose group was closed when the number arrived with the
/// new holder's user id `NEW_USER`.
const REASSIGNED: &str = "+5511987650000";
const OLD_USER: &str = "BR.1111111111";
const NEW_USER: &str = "BR.2222222222";

/// The old owner opted in by JOIN; the new holder wrote 300 s ago (their
/// window is open); returns the tenant.
async fn reassigned_number(app: &TestApp) -> Tenant {
    use crate::channels::{configured, whatsapp};
    use crate::identities::{number_and_user, said};
    let t = configured(app).await;
    let wa_id = &REASSIGNED[1..];
    let old = said(
        number_and_user(wa_id, OLD_USER),
        "wamid.r1",
        "JOIN MAKRO",
        600,
    );
    whatsapp(app, &old).await;
    let new = said(number_and_user(wa_id, NEW_USER), "wamid.r2", "hello", 300);
    whatsapp(app, &new).await;
    t
}

async fn query_status(app: &TestApp, t: &Tenant, field: &str, identity: &str) -> StatusCode {
    let body = json!({field: identity});
    app.post("/v1/subjects/query", &t.auditor, &body)
        .await
        .status
}

/// Erasing the previous owner's user id erases the old group only: the
/// number's new holder is not suppressed, keeps their window and their
/// waiting dead letter (docs/privacy.md).
#[both(pgbouncer)]
async fn erasing_a_previous_owner_leaves_the_numbers_new_holder_alone() {
    use crate::channels::{now_secs, text, whatsapp};
    let app = spawn_app().await;
    let t = reassigned_number(&app).await;
    // The new holder's STOP to a business number not configured: kept.
    let mut stop = text(
        &REASSIGNED[1..],
        "wamid.r3",
        "STOP",
        false,
        now_secs() - 200,
    );
    stop["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("999888777666555");
    whatsapp(&app, &stop).await;
    let mut opt_in = web_opt_in(REASSIGNED, "Makro", &["marketing"]);
    opt_in["captured_at"] = json!(at(-100));
    app.recorded_opt_in(&t, opt_in).await;
    assert_eq!(app.reason(&t, marketing_check(REASSIGNED)).await, "allowed");

    let erased = app
        .post(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"user_id": OLD_USER}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let decision = app.check(&t, marketing_check(REASSIGNED)).await;
    assert_eq!(
        decision.body["reason"], "allowed",
        "not suppressed: {}",
        decision.body
    );
    assert_eq!(decision.body["window"]["open"], true, "{}", decision.body);
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(
        letters.body["dead_letters"].as_array().map(Vec::len),
        Some(1),
        "{}",
        letters.body
    );
    assert_eq!(
        query_status(&app, &t, "user_id", OLD_USER).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        query_status(&app, &t, "number", REASSIGNED).await,
        StatusCode::OK
    );
    assert_eq!(
        query_status(&app, &t, "user_id", NEW_USER).await,
        StatusCode::OK
    );
    verify_db_passes(&app).await;
}

/// Erasing by a number erases every group that holds it, the previous
/// owner's closed one too; every identity whose newest subject was erased
/// answers as erased.
#[both(pgbouncer)]
async fn erasing_a_number_erases_every_group_that_holds_it() {
    let app = spawn_app().await;
    let t = reassigned_number(&app).await;
    let erased = erase(&app, &t, REASSIGNED).await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    for (field, identity) in [
        ("number", REASSIGNED),
        ("user_id", OLD_USER),
        ("user_id", NEW_USER),
    ] {
        assert_eq!(
            query_status(&app, &t, field, identity).await,
            StatusCode::NOT_FOUND,
            "{identity}"
        );
        let asked = json!({field: identity, "purpose": "marketing", "brand": "Makro"});
        assert_eq!(app.reason(&t, asked).await, "opted_out", "{identity}");
    }
    // The old owner's JOIN (seq 1) is erased with the rest.
    let join = app.get("/v1/entries/1", &t.auditor).await;
    assert_eq!(join.body["entry"]["type"], "opt_in");
    assert_eq!(join.body["openings"]["erased"], true, "{}", join.body);
    let export = app.get_text("/v1/export", &t.auditor).await.1;
    let erasures = export
        .lines()
        .filter(|l| l.contains(r#""type":"erasure""#))
        .count();
    assert_eq!(
        erasures, 4,
        "the old number, the old user id, the new number, the new user id"
    );
    verify_db_passes(&app).await;
}

/// Once an identity's newest group is erased, `subjects/query` answers 404
/// and a dossier holds no entry: neither falls back to an older group.
#[both(pgbouncer)]
async fn after_the_newest_group_is_erased_nothing_falls_back_to_an_older_one() {
    let app = spawn_app().await;
    let t = reassigned_number(&app).await;
    let erased = app
        .post(
            "/v1/subjects/erase",
            &t.admin,
            &json!({"user_id": NEW_USER}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    assert_eq!(
        query_status(&app, &t, "number", REASSIGNED).await,
        StatusCode::NOT_FOUND
    );
    let (status, dossier) = app
        .post_text(
            "/v1/export/dossier",
            &t.auditor,
            &json!({"number": REASSIGNED}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = dossier
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2, "the header and the checkpoint: {dossier}");
    assert_eq!(
        app.reason(&t, marketing_check(REASSIGNED)).await,
        "opted_out"
    );
    // The old owner's group is still the old owner's.
    assert_eq!(
        query_status(&app, &t, "user_id", OLD_USER).await,
        StatusCode::OK
    );
}

/// A dead letter is matched on the canonical identity: one a Brazilian
/// mobile sent in its legacy form (no ninth digit) is erased with the
/// number, and letters keep the canonical form.
#[both(pgbouncer)]
async fn a_letter_from_a_legacy_wa_id_is_erased_with_the_number() {
    use crate::channels::{configured, now_secs, text, whatsapp};
    let app = spawn_app().await;
    let t = configured(&app).await;
    let number = "+5511987654321";
    let legacy = "551187654321";
    let mut stop = text(legacy, "wamid.legacy", "STOP", false, now_secs() - 60);
    stop["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
        json!("999888777666555");
    whatsapp(&app, &stop).await;
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    let id = letters.body["dead_letters"][0]["id"]
        .as_i64()
        .expect("a letter");
    let detail = app.get(&format!("/v1/dead-letters/{id}"), &t.admin).await;
    assert_eq!(
        detail.body["payload"]["from"],
        &number[1..],
        "{}",
        detail.body
    );
    app.recorded_opt_in(&t, web_opt_in(number, "Makro", &["marketing"]))
        .await;
    let erased = erase(&app, &t, number).await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    let letters = app.get("/v1/dead-letters", &t.admin).await;
    assert_eq!(letters.body["dead_letters"], json!([]), "{}", letters.body);
}

/// Idempotency records keep the tenant's keyed hash of the body, never its
/// plain SHA-256, which a search over phone numbers would recover.
#[both(pgbouncer)]
async fn idempotency_records_keep_no_plain_hash_of_the_body() {
    use consent_ledger::store::connection::establish;
    use consent_ledger::store::schema::idempotency_keys;
    use diesel::{QueryDsl, RunQueryDsl};
    use sha2::Digest;
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    let opt_in = probe_opt_in(ERASED, &at(-60));
    let erasure = json!({"number": ERASED});
    for (path, key, body) in [
        ("/v1/opt-ins", &t.collector, &opt_in),
        ("/v1/subjects/erase", &t.admin, &erasure),
    ] {
        let answer = app
            .post_with(path, key, body, &[("Idempotency-Key", "retry-1")])
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let plain: Vec<String> = [&opt_in, &erasure]
        .iter()
        .map(|body| hex::encode(sha2::Sha256::digest(serde_json::to_vec(body).unwrap())))
        .collect();
    let mut conn = establish(&app.database_target()).expect("connect");
    let stored: Vec<String> = idempotency_keys::table
        .select(idempotency_keys::request_sha256)
        .load(&mut conn)
        .expect("read");
    assert!(!stored.is_empty());
    for hash in &stored {
        assert!(!plain.contains(hash), "a plain hash of a body is stored");
    }
    // A retry of the erasure still replays its answer.
    let again = app
        .post_with(
            "/v1/subjects/erase",
            &t.admin,
            &erasure,
            &[("Idempotency-Key", "retry-1")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
}

/// An identity erased, then seen again by an interaction only (a new
/// subject holding a window and no entry), is erased again: 201, still
/// opted out (the second opt-out is the suppression's to keep), never a
/// 500. Found by the API fuzzer.
#[both(pgbouncer)]
async fn an_erased_number_seen_again_is_erased_again() {
    let app = spawn_app().await;
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(&t, probe_opt_in(ERASED, &at(-60)))
        .await;
    assert_eq!(erase(&app, &t, ERASED).await.status, StatusCode::CREATED);
    let interaction = app
        .post("/v1/interactions", &t.collector, &json!({"number": ERASED}))
        .await;
    assert_eq!(interaction.status, StatusCode::OK, "{}", interaction.body);
    let again = erase(&app, &t, ERASED).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let decision = app.check(&t, marketing_check(ERASED)).await;
    assert_eq!(decision.body["reason"], "opted_out", "{}", decision.body);
    assert_eq!(decision.body["window"]["open"], false, "{}", decision.body);
    let third = erase(&app, &t, ERASED).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.body);
    verify_db_passes(&app).await;
}

/// An erased user id linked again to a number after its erasure has a
/// newer subject (its group holds the link): its STOP records an opt-out,
/// and a later change of number closes that group without a 500.
#[both(pgbouncer)]
async fn an_erased_user_id_linked_again_records_its_opt_outs() {
    use crate::channels::{configured, log_size, whatsapp};
    use crate::identities::{number_and_user, said, user};
    let app = spawn_app().await;
    let t = configured(&app).await;
    let user_id = "BR.5151515151";
    whatsapp(&app, &said(user(user_id), "wamid.e1", "JOIN MAKRO", 600)).await;
    let erased = app
        .post("/v1/subjects/erase", &t.admin, &json!({"user_id": user_id}))
        .await;
    assert_eq!(erased.status, StatusCode::CREATED, "{}", erased.body);
    whatsapp(
        &app,
        &said(
            number_and_user("5511933334444", user_id),
            "wamid.e2",
            "hi",
            300,
        ),
    )
    .await;
    let size = log_size(&app, &t).await;
    whatsapp(&app, &said(user(user_id), "wamid.e3", "STOP", 200)).await;
    assert_eq!(log_size(&app, &t).await, size + 1, "the STOP is recorded");
    let moved = said(
        number_and_user("5511955556666", user_id),
        "wamid.e4",
        "hi",
        100,
    );
    whatsapp(&app, &moved).await;
    let asked = json!({"number": "+5511933334444", "purpose": "marketing", "brand": "Makro"});
    assert_eq!(app.reason(&t, asked).await, "opted_out");
}
