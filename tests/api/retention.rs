//! Evidence retention and the purges (docs/privacy.md), on a clock the
//! test controls: a subject is erased (reason `retention`, no opt-out, no
//! suppression) once `evidence_retention_days` have passed since its
//! consent ended, never while consent is current; closed windows and old
//! idempotency answers are purged; every run is bounded.

use crate::erasure::{database_bytes, found, secrets_of_number};
use crate::helpers::*;
use consent_ledger::domain::time::Timestamp;
use consent_ledger::keys::MasterKey;
use consent_ledger::services::housekeeping::{self, Budget, Report};
use consent_ledger::startup::Hooks;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ENDED: &str = "+4915111111111";
const CURRENT: &str = "+4915122222222";
const LATER: &str = "+4915133333333";
const WINDOW_ONLY: &str = "+4915144444444";
const PROBE: &str = "RetentionProbe/2.1 (evidence body)";
const DAY: i64 = 86_400;

/// Runs the housekeeping job once at the app's now, as the background
/// task does, on a connection of the test's own.
pub(crate) fn run_housekeeping(app: &TestApp, budget: Budget) -> Report {
    let connect = || {
        consent_ledger::store::connection::establish(&app.database_target())
            .expect("connect to the app's database")
    };
    let (mut conn, mut lock) = (connect(), connect());
    let (master, created) = MasterKey::load_or_generate(&app.data_dir().join("master.key"))
        .expect("the app's master key");
    assert!(!created, "the app's master key must exist");
    housekeeping::run(&mut conn, &mut lock, &master, app.clock.now(), budget).expect("housekeeping")
}

fn opt_in_at(app: &TestApp, number: &str, agent: &str) -> Value {
    let mut body = web_opt_in(number, "Makro", &["marketing"]);
    body["captured_at"] = json!(app.at(-60));
    body["evidence"]["user_agent"] = json!(agent);
    body
}

fn opt_out_at(app: &TestApp, number: &str) -> Value {
    let mut body = api_opt_out(number);
    body["captured_at"] = json!(app.at(-1));
    // Each person's evidence is their own.
    body["evidence"]["reason"] = json!(format!("asked the call centre ({number})"));
    body
}

fn check(number: &str) -> Value {
    json!({"number": number, "purpose": "marketing", "brand": "Makro"})
}

async fn set_retention(app: &TestApp, t: &Tenant, settings: Value) {
    let patched = app.patch("/v1/tenant", &t.admin, &settings).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
}

async fn tree_size(app: &TestApp, t: &Tenant) -> u64 {
    let (status, export) = app.get_text("/v1/export?openings=none", &t.auditor).await;
    assert_eq!(status, StatusCode::OK);
    let header: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    header["tree_size"].as_u64().unwrap()
}

async fn entry(app: &TestApp, t: &Tenant, seq: u64) -> Value {
    let answer = app.get(&format!("/v1/entries/{seq}"), &t.auditor).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// One tenant, three people and a window: only the person whose consent
/// ended more than the retention period ago is erased, by an `erasure`
/// entry of reason `retention` alone; their number, salts and evidence
/// leave the database; the log still verifies; the number is not
/// suppressed.
#[both(pgbouncer)]
async fn retention_erases_what_is_due_and_nothing_else() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    set_retention(&app, &t, json!({"evidence_retention_days": 30})).await;
    let ended_in = app
        .post_with(
            "/v1/opt-ins",
            &t.collector,
            &opt_in_at(&app, ENDED, PROBE),
            &[("Idempotency-Key", "retention-1")],
        )
        .await;
    assert_eq!(ended_in.status, StatusCode::CREATED, "{}", ended_in.body);
    let current = app
        .recorded_opt_in(&t, opt_in_at(&app, CURRENT, "Mozilla/5.0"))
        .await;
    app.recorded_opt_in(&t, opt_in_at(&app, LATER, "Mozilla/5.0"))
        .await;
    app.clock.advance(DAY * 1000);
    let ended_out = app.recorded_opt_out(&t, opt_out_at(&app, ENDED)).await;
    app.clock.advance(19 * DAY * 1000);
    app.recorded_opt_out(&t, opt_out_at(&app, LATER)).await;
    let ended_seq = ended_in.body["seq"].as_u64().unwrap();
    let secrets = secrets_of_number(&app, &t, ENDED, PROBE, &[ended_seq, ended_out]).await;

    // 29 days after the opt-out: nothing is due; the window is still open;
    // the idempotency answer of the first opt-in, a month old, goes.
    app.clock.advance(10 * DAY * 1000);
    let interaction = app
        .post(
            "/v1/interactions",
            &t.collector,
            &json!({"number": WINDOW_ONLY, "received_at": app.at(-10)}),
        )
        .await;
    assert_eq!(interaction.status, StatusCode::OK, "{}", interaction.body);
    let early = run_housekeeping(&app, Budget::default());
    assert_eq!(
        early,
        Report {
            ran: true,
            erased: 0,
            windows: 0,
            idempotency_keys: 1,
            documents: 0
        }
    );
    let size = tree_size(&app, &t).await;

    // 30 days after the opt-out.
    app.clock.advance(DAY * 1000 + 1000);
    let before_purge = app.check(&t, check(WINDOW_ONLY)).await.body;
    let report = run_housekeeping(&app, Budget::default());
    assert_eq!(
        report,
        Report {
            ran: true,
            erased: 1,
            windows: 1,
            idempotency_keys: 0,
            documents: 0
        }
    );
    // A closed window answers the same once purged.
    assert_eq!(app.check(&t, check(WINDOW_ONLY)).await.body, before_purge);

    // One entry, the erasure: no opt-out, by system:retention.
    assert_eq!(tree_size(&app, &t).await, size + 1);
    let erasure = entry(&app, &t, size).await;
    assert_eq!(erasure["entry"]["type"], "erasure");
    assert_eq!(erasure["entry"]["reason"], "retention");
    assert_eq!(erasure["entry"]["collector"], "system:retention");
    assert_eq!(erasure["entry"]["subject"], ended_in.body["subject"]);
    assert_eq!(erasure["openings"]["erased"], true);
    // And in the audit trail, by the same collector.
    let trail = app.get("/v1/audit-events?limit=1000", &t.admin).await.body;
    let erasures: Vec<&Value> = trail["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "subject.erased")
        .collect();
    assert_eq!(erasures.len(), 1);
    let last = erasures[0];
    assert_eq!(last["actor"], "system:retention");
    assert_eq!(
        last["details"],
        json!({"seq": size, "subject": ended_in.body["subject"], "reason": "retention"})
    );

    // Nothing of that person, nor of the purged window, is left.
    let bytes = database_bytes(&app);
    for secret in secrets
        .iter()
        .map(String::as_str)
        .chain([WINDOW_ONLY, &WINDOW_ONLY[1..]])
    {
        assert!(
            !found(&bytes, secret),
            "{secret:?} is still in the database"
        );
    }
    // The others are untouched.
    let kept = entry(&app, &t, current).await;
    assert_eq!(kept["openings"]["subject"]["e164"], CURRENT);
    assert_eq!(app.reason(&t, check(CURRENT)).await, "allowed");
    assert_eq!(app.reason(&t, check(LATER)).await, "opted_out");

    // Not suppressed: no subject, no opt-in; a new opt-in starts a new subject.
    let query = app
        .post("/v1/subjects/query", &t.auditor, &json!({"number": ENDED}))
        .await;
    assert_eq!(query.status, StatusCode::NOT_FOUND);
    assert_eq!(app.reason(&t, check(ENDED)).await, "no_opt_in");
    let again = app.opt_in(&t, opt_in_at(&app, ENDED, "Mozilla/5.0")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_ne!(again.body["subject"], ended_in.body["subject"]);

    // Every artefact still verifies.
    let (code, out, err) = run_cli(&["verify-db"], Some(&app.data_dir()));
    assert_eq!(code, 0, "{out}{err}");
    let vkey = app.get("/v1/tenant", &t.admin).await.body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, export) = app.get_text("/v1/export", &t.auditor).await;
    let path = write_file(&app.scratch(), "export.ndjson", &export);
    let (code, out, err) = run_cli(&["verify", &path, "--key", &vkey], None);
    assert_eq!(code, 0, "{out}{err}");

    // The other ended consent is due 30 days after its own opt-out.
    let nothing = run_housekeeping(&app, Budget::default());
    assert_eq!(nothing.erased, 0);
    app.clock.advance(18 * DAY * 1000);
    assert_eq!(run_housekeeping(&app, Budget::default()).erased, 0);
    app.clock.advance(DAY * 1000);
    assert_eq!(run_housekeeping(&app, Budget::default()).erased, 1);
    assert_eq!(app.reason(&t, check(LATER)).await, "no_opt_in");
    assert_eq!(app.reason(&t, check(CURRENT)).await, "allowed");
}

/// With `max_consent_age_days`, an opt-in that expired counts from its
/// expiry; expiry alone deletes nothing; without the setting nothing is
/// erased.
#[both(pgbouncer)]
async fn expiry_ends_consent_and_retention_counts_from_it() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    set_retention(&app, &t, json!({"max_consent_age_days": 10})).await;
    app.recorded_opt_in(&t, opt_in_at(&app, ENDED, PROBE)).await;
    app.clock.advance(11 * DAY * 1000);
    assert_eq!(app.reason(&t, check(ENDED)).await, "expired");
    // No retention set: expiry deletes nothing.
    assert_eq!(run_housekeeping(&app, Budget::default()).erased, 0);
    set_retention(&app, &t, json!({"evidence_retention_days": 5})).await;
    // Expired 1 day ago (+60 s of capture): 4 more days to go.
    app.clock.advance(3 * DAY * 1000);
    assert_eq!(run_housekeeping(&app, Budget::default()).erased, 0);
    app.clock.advance(DAY * 1000);
    assert_eq!(run_housekeeping(&app, Budget::default()).erased, 1);
    assert_eq!(app.reason(&t, check(ENDED)).await, "no_opt_in");
}

/// A run erases at most its budget per tenant; the next run goes on.
#[both(pgbouncer)]
async fn each_run_is_bounded() {
    let app = spawn_app_at_manual_clock().await;
    let t = app.tenant("makro", "Makro").await;
    set_retention(&app, &t, json!({"evidence_retention_days": 1})).await;
    for number in [ENDED, LATER, CURRENT] {
        app.recorded_opt_in(&t, opt_in_at(&app, number, "Mozilla/5.0"))
            .await;
        app.recorded_opt_out(&t, opt_out_at(&app, number)).await;
    }
    app.clock.advance(2 * DAY * 1000);
    let budget = Budget {
        erasures_per_tenant: 2,
        ..Budget::default()
    };
    assert_eq!(run_housekeeping(&app, budget).erased, 2);
    assert_eq!(run_housekeeping(&app, budget).erased, 1);
    assert_eq!(run_housekeeping(&app, budget).erased, 0);
}

/// The background task runs the same job on the application's clock.
#[both(pgbouncer)]
async fn the_background_job_erases_on_the_app_clock() {
    let hooks = Hooks {
        clock: consent_ledger::domain::time::Clock::manual(Timestamp::now()),
        housekeeping_interval: Some(std::time::Duration::from_millis(50)),
        ..Hooks::default()
    };
    let app = spawn_app_hooked(|_| {}, hooks).await;
    let t = app.tenant("makro", "Makro").await;
    set_retention(&app, &t, json!({"evidence_retention_days": 2})).await;
    let opt_in = app.recorded_opt_in(&t, opt_in_at(&app, ENDED, PROBE)).await;
    app.recorded_opt_out(&t, opt_out_at(&app, ENDED)).await;
    let size = tree_size(&app, &t).await;
    app.clock.advance(2 * DAY * 1000 + 1000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tree_size(&app, &t).await == size {
        assert!(
            std::time::Instant::now() < deadline,
            "the background job erased nothing in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let erasure = entry(&app, &t, size).await;
    assert_eq!(erasure["entry"]["reason"], "retention");
    assert_eq!(entry(&app, &t, opt_in).await["openings"]["erased"], true);
}
