//! The integration suite again, on PostgreSQL: the same test files, each
//! test on its own database of a throwaway cluster (`tests/api/postgres.rs`).
//! Left out: `restore.rs`, which copies the SQLite file.

/// The database this binary's tests run on.
pub const BACKEND: helpers::Backend = helpers::Backend::Postgres;

#[path = "../api/channels.rs"]
mod channels;
#[path = "../api/checks.rs"]
mod checks;
#[path = "../api/cli.rs"]
mod cli;
#[path = "../api/decisions.rs"]
mod decisions;
#[path = "../api/errors.rs"]
mod errors;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/hostile.rs"]
mod hostile;
#[path = "../api/idempotency.rs"]
mod idempotency;
#[path = "../api/log.rs"]
mod log;
mod multi_instance;
#[path = "../api/postgres.rs"]
mod postgres;
#[path = "../api/races.rs"]
mod races;
#[path = "../api/recording.rs"]
mod recording;
#[path = "../api/tamper.rs"]
mod tamper;
#[path = "../api/tenants.rs"]
mod tenants;

/// The suite's apps really keep their data in PostgreSQL.
#[tokio::test]
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
