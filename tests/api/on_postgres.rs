//! What only PostgreSQL has: the suite's apps really keep their data
//! there, the housekeeping job's advisory lock, and connections the server
//! drops. Where PostgreSQL is not installed (and not required) each test
//! returns early; the run says so (`tests/api/postgres.rs`).

use crate::helpers::{self, postgres_only};
use crate::{postgres, retention};

/// The suite's apps really keep their data in PostgreSQL.
#[postgres_only]
async fn this_suite_runs_on_postgresql() {
    use diesel::{Connection, QueryDsl, RunQueryDsl};
    let app = helpers::spawn_app().await;
    let Some(_) = postgres::cluster() else {
        return; // Not installed and not required: the run said so.
    };
    app.tenant("makro", "Makro").await;
    let url = std::fs::read_to_string(app.scratch().join("database-url")).expect("url file");
    let mut conn = diesel::pg::PgConnection::establish(&url).expect("connect");
    let tenants: i64 = consent_ledger::store::schema::tenants::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(tenants, 1);
}

/// The housekeeping job runs on one instance at a time: while another
/// session holds its advisory lock, a run does nothing; once released, the
/// next run erases what is due.
#[postgres_only(pgbouncer)]
async fn housekeeping_runs_on_one_instance_at_a_time() {
    use consent_ledger::services::housekeeping::Budget;
    use diesel::{Connection, RunQueryDsl};
    let app = helpers::spawn_app_at_manual_clock().await;
    let Some(url) = app.database_url() else {
        return; // Not installed and not required: the run said so.
    };
    let t = app.tenant("makro", "Makro").await;
    let settings = serde_json::json!({"evidence_retention_days": 1});
    assert_eq!(
        app.patch("/v1/tenant", &t.admin, &settings).await.status,
        200
    );
    let mut opt_in = helpers::web_opt_in("+4915111111111", "Makro", &["marketing"]);
    opt_in["captured_at"] = serde_json::json!(app.at(-60));
    app.recorded_opt_in(&t, opt_in).await;
    let mut opt_out = helpers::api_opt_out("+4915111111111");
    opt_out["captured_at"] = serde_json::json!(app.at(0));
    app.recorded_opt_out(&t, opt_out).await;
    app.clock.advance(2 * 86_400_000);

    let mut other = diesel::pg::PgConnection::establish(&url).expect("connect");
    let lock = consent_ledger::store::connection::JOB_LOCK;
    diesel::sql_query(format!("SELECT pg_advisory_lock({lock})"))
        .execute(&mut other)
        .expect("lock");
    let held = retention::run_housekeeping(&app, Budget::default());
    assert_eq!((held.ran, held.erased), (false, 0));
    diesel::sql_query(format!("SELECT pg_advisory_unlock({lock})"))
        .execute(&mut other)
        .expect("unlock");
    let free = retention::run_housekeeping(&app, Budget::default());
    assert_eq!((free.ran, free.erased), (true, 1));
}

/// The server drops every connection of the service (as a restart or a
/// failover does): requests answer 200 or a retryable 503 `not_ready`,
/// never a 500, each lost connection fails at most one request and is
/// replaced, and once connections have idled past the trusted interval
/// (when each is tested before use) everything answers again.
#[postgres_only]
async fn connections_the_server_drops_are_replaced() {
    use diesel::{Connection, RunQueryDsl};
    let app = helpers::spawn_app().await;
    let Some(_) = postgres::cluster() else {
        return; // Not installed and not required: the run said so.
    };
    let t = app.tenant("makro", "Makro").await;
    app.recorded_opt_in(
        &t,
        helpers::web_opt_in(helpers::NUMBER, "Makro", &["marketing"]),
    )
    .await;
    let check = serde_json::json!({"number": helpers::NUMBER, "purpose": "marketing"});
    // Several connections in use at once, so the pool holds more than one.
    let answers =
        futures_util::future::join_all((0..8).map(|_| app.check(&t, check.clone()))).await;
    assert!(answers.iter().all(|a| a.status == reqwest::StatusCode::OK));

    let url = std::fs::read_to_string(app.scratch().join("database-url")).expect("url file");
    let mut admin = diesel::pg::PgConnection::establish(&url).expect("connect");
    #[derive(diesel::QueryableByName)]
    struct Killed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        killed: i64,
    }
    let killed: Killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS killed FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result(&mut admin)
    .expect("terminate");
    assert!(killed.killed >= 1, "the service held connections");

    // Readiness probes meet the dropped connections too: 503 `not_ready`.
    for _ in 0..3 {
        let ready = app.get("/readyz", "").await;
        assert!(
            ready.status == reqwest::StatusCode::OK || ready.code() == "not_ready",
            "{} {}",
            ready.status,
            ready.body
        );
    }
    // Rounds of eight concurrent checks meet the dropped connections.
    let round = || futures_util::future::join_all((0..8).map(|_| app.check(&t, check.clone())));
    let mut unavailable = 0;
    for n in 0..10 {
        for answer in round().await {
            match answer.status.as_u16() {
                200 => assert_eq!(answer.body["reason"], "allowed"),
                503 => {
                    assert_eq!(answer.code(), "not_ready");
                    unavailable += 1;
                }
                other => panic!("round {n}: {other} {}", answer.body),
            }
        }
    }
    // At most one failed request per lost connection (the pool holds eight).
    assert!(unavailable <= 8, "{unavailable} requests failed");
    // A dropped connection no request has met yet is tested before its next
    // use once it has idled past the trusted interval: then nothing fails.
    tokio::time::sleep(
        consent_ledger::store::pool::TRUSTED_AFTER_USE + std::time::Duration::from_millis(200),
    )
    .await;
    for answer in round().await {
        assert_eq!(answer.status, reqwest::StatusCode::OK, "{}", answer.body);
    }
    assert_eq!(app.get("/readyz", "").await.status, reqwest::StatusCode::OK);
    // A write after the drop works too, and the log is whole.
    app.recorded_opt_out(&t, helpers::api_opt_out(helpers::NUMBER))
        .await;
    assert_eq!(app.reason(&t, check).await, "opted_out");
}

/// A pool that cannot open its connections says so about PostgreSQL, its
/// URL (no password), the pool's size and the settings to look at: here a
/// role allowed one connection, which the migrations take and give back,
/// and a pool of three then waits for the rest.
#[postgres_only]
async fn a_pool_without_connections_names_postgresql_and_its_size() {
    use diesel::{Connection, RunQueryDsl};
    let Some(cluster) = postgres::cluster() else {
        return; // Not installed and not required: the run said so.
    };
    let url = cluster.new_database();
    let database = url.rsplit('/').next().expect("a database name").to_owned();
    let role = format!("limited_{database}");
    let mut admin = diesel::pg::PgConnection::establish(&url).expect("connect");
    for statement in [
        format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"),
        format!("ALTER DATABASE {database} OWNER TO {role}"),
    ] {
        diesel::sql_query(statement)
            .execute(&mut admin)
            .expect("limit the role");
    }
    drop(admin);
    let limited = url.replacen("postgres://postgres@", &format!("postgres://{role}:pw@"), 1);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("database-url"), &limited).expect("url");
    let data = dir.path().join("data");
    let (code, out, err) = helpers::run_cli(&["--db-pool-size", "3", "verify-db"], Some(&data));
    assert_ne!(code, 0, "{out}{err}");
    let shown = limited.replacen(":pw@", ":***@", 1);
    assert!(
        err.contains(&format!(
            "PostgreSQL at {shown} gave the pool no connection within 10 s"
        )),
        "{err}"
    );
    assert!(
        err.contains("the pool opens 3 connections (CONSENT_LEDGER_DB_POOL_SIZE)"),
        "{err}"
    );
    // The server's own refusal, not diesel's "invalid connection url".
    assert!(err.contains("too many connections for role"), "{err}");
    assert!(err.contains("max_connections"), "{err}");
    assert!(!err.contains(":pw@") && !err.contains("SQLite"), "{err}");
}
