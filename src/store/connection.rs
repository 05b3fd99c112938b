//! Connections and migrations, on SQLite (the embedded default) or
//! PostgreSQL, chosen by the `DATABASE_URL` scheme. SQLite runs in WAL mode
//! with a busy timeout, foreign keys, full fsync and secure delete on every
//! pooled connection.

use crate::config::{DatabaseTarget, Pooler};
use crate::domain::access::TenantId;
use crate::keys::MasterKey;
use crate::store::schema::meta;
use diesel::connection::{AnsiTransactionManager, CacheSize, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// A connection to either backend. Queries written with diesel's DSL run on
/// both; what the common dialect lacks (`ON CONFLICT`) goes through
/// [`on_backend!`](crate::on_backend).
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Runs one diesel expression on the concrete connection, for what the
/// common dialect cannot say (`ON CONFLICT`): `on_backend!(conn, |c| …)`.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite($c) => $body,
            $crate::store::DbConn::Pg($c) => $body,
        }
    };
}

/// A stuck statement does not hold locks forever: the limits every
/// PostgreSQL transaction sets for itself as it begins (in the same round
/// trip), so that they hold behind a transaction-mode pooler too, where a
/// session's settings do not follow the connection.
macro_rules! pg_timeouts {
    () => {
        "SET LOCAL statement_timeout = '30s'; SET LOCAL lock_timeout = '10s'"
    };
}

impl DbConn {
    /// A write transaction: on SQLite `BEGIN IMMEDIATE` takes the database's
    /// write lock up front (waiting with the busy timeout), so a transaction
    /// that reads before it writes never fails on a stale snapshot; on
    /// PostgreSQL a plain transaction, whose writers lock the rows they need
    /// (see [`lock_log`]).
    pub fn immediate_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.transaction_begun_with(
            "BEGIN IMMEDIATE",
            concat!("BEGIN ISOLATION LEVEL READ COMMITTED; ", pg_timeouts!()),
            f,
        )
    }

    /// A read-only transaction in which every statement sees one snapshot:
    /// on SQLite (WAL) any read transaction does; PostgreSQL's default, read
    /// committed, gives each statement its own, so this asks for repeatable
    /// read.
    pub fn snapshot<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.transaction_begun_with(
            "BEGIN",
            concat!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ",
                pg_timeouts!()
            ),
            f,
        )
    }

    fn transaction_begun_with<T, E, F>(&mut self, sqlite: &str, pg: &str, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        if self.in_transaction()? {
            return self.savepoint(f);
        }
        match self {
            DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, sqlite)?,
            DbConn::Pg(c) => AnsiTransactionManager::begin_transaction_sql(c, pg)?,
        }
        match f(self) {
            Ok(value) => {
                let committed =
                    <DbConn as Connection>::TransactionManager::commit_transaction(self);
                crate::metrics::transaction_ended(committed.is_ok());
                committed?;
                Ok(value)
            }
            Err(e) => {
                crate::metrics::transaction_ended(false);
                // The first error is the one worth reporting.
                let _ = <DbConn as Connection>::TransactionManager::rollback_transaction(self);
                Err(e)
            }
        }
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&mut self) -> QueryResult<bool> {
        let depth = match self {
            DbConn::Sqlite(c) => {
                AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?
            }
            DbConn::Pg(c) => {
                AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?
            }
        };
        Ok(depth.is_some())
    }

    /// Runs `f` in a savepoint of the open transaction: what it wrote is
    /// undone if it fails, and the rest of the transaction goes on (a group
    /// commit runs each request this way, and a request's own transaction
    /// becomes one). Its entries count when the outer transaction commits.
    pub fn savepoint<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        type Manager = <DbConn as Connection>::TransactionManager;
        Manager::begin_transaction(self)?;
        let mark = crate::metrics::pending_mark();
        match f(self) {
            Ok(value) => {
                Manager::commit_transaction(self)?;
                Ok(value)
            }
            Err(e) => {
                crate::metrics::pending_rolled_back(mark);
                Manager::rollback_transaction(self)?;
                Err(e)
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DbConn::Pg(_))
    }
}

/// Serialises appends to one log across processes: on PostgreSQL the log's
/// head row is locked (`SELECT … FOR UPDATE`) until the transaction ends; on
/// SQLite `BEGIN IMMEDIATE` already holds the only write lock. Every writer
/// that checks a tenant's state before it writes (the last admin key, a
/// brand, a webhook, an interaction) takes it too, and as its first
/// statement: a row referencing the tenant written before it takes a share
/// lock on the tenant that could deadlock with another writer.
pub fn lock_log(conn: &mut DbConn, tenant: &TenantId) -> QueryResult<()> {
    if let DbConn::Pg(c) = conn {
        use crate::store::schema::tenants;
        tenants::table
            .find(tenant)
            .select(tenants::id)
            .for_update()
            .first::<String>(c)?;
    }
    Ok(())
}

/// A rule that spans tenants, kept by writers that check before they write.
#[derive(Debug, Clone, Copy)]
pub enum SharedRule {
    /// A tenant id is created once.
    TenantIds,
    /// A business number or phone number id belongs to one tenant.
    ChannelNumbers,
}

/// Serialises the writers that keep a [`SharedRule`] until the transaction
/// ends: on PostgreSQL a transaction-scoped advisory lock; on SQLite
/// `BEGIN IMMEDIATE` already holds the only write lock.
pub fn lock_shared_rule(conn: &mut DbConn, rule: SharedRule) -> QueryResult<()> {
    if let DbConn::Pg(c) = conn {
        let key = match rule {
            SharedRule::TenantIds => MIGRATION_LOCK + 1,
            SharedRule::ChannelNumbers => MIGRATION_LOCK + 2,
        };
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({key})")).execute(c)?;
    }
    Ok(())
}

/// Runs `job` on `conn` only if no other instance runs it now: on
/// PostgreSQL under an advisory lock taken without waiting (`None` when
/// another instance holds it) in a transaction of its own on `lock`, open
/// while the job runs, so that it holds behind a transaction-mode pooler
/// too (a session lock there stays on whichever server session took it);
/// SQLite has one instance.
pub fn exclusively<T, E>(
    lock: &mut DbConn,
    conn: &mut DbConn,
    job: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<Option<T>, E>
where
    E: From<diesel::result::Error>,
{
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    if !lock.is_postgres() {
        return job(conn).map(Some);
    }
    lock.immediate_transaction(|lock| {
        let DbConn::Pg(c) = lock else {
            unreachable!("checked above")
        };
        let taken = diesel::sql_query(format!(
            "SELECT pg_try_advisory_xact_lock({JOB_LOCK}) AS taken"
        ))
        .get_result::<Taken>(c)?
        .taken;
        if !taken {
            return Ok(None);
        }
        job(conn).map(Some)
    })
}

/// The advisory lock of the housekeeping job (PostgreSQL).
pub const JOB_LOCK: i64 = MIGRATION_LOCK + 3;

/// SQLite's page cache per pooled connection, in KiB: the upper levels of
/// the indexes a check and an append walk stay in it, and the operating
/// system caches the rest of the file. Memory is not mapped (`mmap_size =
/// 0`): a mapped file's pages count as the process's resident memory, and
/// an export or a verification reads all of it.
const CACHE_KIB: u32 = 4096;

/// How long a writer waits for SQLite's lock before giving up.
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// The settings of every connection.
///
/// Temporary storage is in memory (`temp_store = MEMORY`): above all the
/// sub-journal, where SQLite keeps what each write of a group commit
/// changed under its savepoint, so that it can roll back alone. On a file
/// (past 64 KiB, the default) it was written with `pwrite` on every append:
/// a third of the group leader's time in a profile of opt-ins. It is emptied
/// when each write's savepoint is released, so it holds one write's pages.
///
/// Behind a transaction-mode pooler PostgreSQL's connections set nothing
/// for the session: each transaction sets its own limits (`pg_timeouts!`).
pub(super) fn apply_pragmas(conn: &mut DbConn, pooler: Pooler) -> QueryResult<()> {
    match conn {
        DbConn::Sqlite(c) => c.batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA cache_size = -{CACHE_KIB};
             PRAGMA mmap_size = 0;
             PRAGMA temp_store = MEMORY;"
        )),
        DbConn::Pg(_) if pooler == Pooler::Transaction => Ok(()),
        // Reads see committed state; a stuck statement does not hold locks forever.
        DbConn::Pg(c) => c.batch_execute(
            "SET default_transaction_isolation = 'read committed';
             SET statement_timeout = '30s';
             SET lock_timeout = '10s';",
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the SQLite database {path}: {message}")]
    Open { path: String, message: String },
    #[error("cannot connect to PostgreSQL at {target}: {message}")]
    Connect { target: String, message: String },
    #[error("PostgreSQL at {target} gave the pool no connection within {waited} s ({message}): the pool opens {size} connections (CONSENT_LEDGER_DB_POOL_SIZE); is the server's max_connections (or a pooler's pool, PgBouncer's default_pool_size and max_client_conn) too small for every instance and command?")]
    Pool {
        target: String,
        size: u32,
        waited: u64,
        message: String,
    },
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("the master key does not open this database's canary: this is not the key the database was created with (check CONSENT_LEDGER_MASTER_KEY_FILE)")]
    WrongMasterKey,
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

/// One connection, outside the pool (CLI commands, migrations). The real
/// error is shown: a wrong host, password or database name says so.
pub fn establish(target: &DatabaseTarget) -> Result<DbConn, OpenError> {
    let mut conn = match target {
        DatabaseTarget::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| OpenError::Open {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            let url = path.to_string_lossy();
            DbConn::Sqlite(
                SqliteConnection::establish(&url).map_err(|e| OpenError::Open {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?,
            )
        }
        DatabaseTarget::Postgres(url) => {
            let mut conn =
                PgConnection::establish(url.expose()).map_err(|e| OpenError::Connect {
                    target: url.redacted(),
                    message: e.to_string(),
                })?;
            if url.pooler() == Pooler::Transaction {
                unprepared(&mut conn);
            }
            DbConn::Pg(conn)
        }
    };
    apply_pragmas(&mut conn, pooler_of(target))?;
    Ok(conn)
}

/// What stands between the service and the database.
pub fn pooler_of(target: &DatabaseTarget) -> Pooler {
    match target {
        DatabaseTarget::Postgres(url) => url.pooler(),
        DatabaseTarget::Sqlite(_) => Pooler::None,
    }
}

/// No named prepared statements on this connection: behind a
/// transaction-mode pooler the server session that prepared one is not the
/// one that runs it next. Diesel then sends each statement with its
/// parameters in one message (`PQsendQueryParams`), unnamed.
pub(super) fn unprepared(conn: &mut PgConnection) {
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
}

/// Any fixed number: the advisory lock that keeps two instances from
/// migrating one PostgreSQL database at once.
const MIGRATION_LOCK: i64 = 0x0063_6f6e_7365_6e74;

/// Runs pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, OpenError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| OpenError::Migrate(e.to_string());
    match conn {
        DbConn::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|done| done.len())
            .map_err(failed),
        // One transaction, its lock held to the end (each migration a
        // savepoint of it): all or none of them, one instance at a time,
        // and nothing left to a session a pooler may not give back.
        DbConn::Pg(c) => c.transaction(|c| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .execute(c)?;
            c.run_pending_migrations(PG_MIGRATIONS)
                .map(|done| done.len())
                .map_err(failed)
        }),
    }
}

/// Reverts every migration (tests).
pub fn revert_migrations(conn: &mut DbConn) -> Result<(), OpenError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| OpenError::Migrate(e.to_string());
    match conn {
        DbConn::Sqlite(c) => c
            .revert_all_migrations(SQLITE_MIGRATIONS)
            .map(|_| ())
            .map_err(failed),
        DbConn::Pg(c) => c
            .revert_all_migrations(PG_MIGRATIONS)
            .map(|_| ())
            .map_err(failed),
    }
}

/// Reverts migrations, newest first, up to and including `version` (tests:
/// a database as the version before it left it).
pub fn revert_through(conn: &mut DbConn, version: &str) -> Result<(), OpenError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| OpenError::Migrate(e.to_string());
    loop {
        let reverted = match conn {
            DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
            DbConn::Pg(c) => c.revert_last_migration(PG_MIGRATIONS),
        }
        .map_err(failed)?;
        // Diesel keeps a version's digits only.
        let digits = |v: &str| v.chars().filter(char::is_ascii_digit).collect::<String>();
        if digits(&reverted.to_string()) == digits(version) {
            return Ok(());
        }
    }
}

/// One round trip: whether the database answers on this connection.
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
}

/// Whether the schema is current (for `/readyz`).
pub fn migrations_current(conn: &mut DbConn) -> bool {
    let pending = match conn {
        DbConn::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConn::Pg(c) => c.has_pending_migration(PG_MIGRATIONS),
    };
    pending.map(|pending| !pending).unwrap_or(false)
}

/// Checks the canary, or stores it on a fresh database.
pub fn check_canary(conn: &mut DbConn, master: &MasterKey) -> Result<(), OpenError> {
    let stored: Option<String> = meta::table
        .filter(meta::name.eq("canary"))
        .select(meta::value)
        .first(conn)
        .optional()?;
    match stored {
        Some(sealed) if master.opens_canary(&sealed) => Ok(()),
        Some(_) => Err(OpenError::WrongMasterKey),
        None => {
            // Two instances starting on a fresh database: the first canary wins.
            meta_insert(conn, "canary", &master.make_canary())?;
            let stored = meta_get(conn, "canary")?.unwrap_or_default();
            if master.opens_canary(&stored) {
                Ok(())
            } else {
                Err(OpenError::WrongMasterKey)
            }
        }
    }
}

/// Reads a `meta` value.
pub fn meta_get(conn: &mut DbConn, name: &str) -> QueryResult<Option<String>> {
    meta::table
        .filter(meta::name.eq(name))
        .select(meta::value)
        .first(conn)
        .optional()
}

/// Inserts a `meta` value unless one exists; returns whether it was inserted.
pub fn meta_insert(conn: &mut DbConn, name: &str, value: &str) -> QueryResult<bool> {
    crate::on_backend!(conn, |c| diesel::insert_into(meta::table)
        .values((meta::name.eq(name), meta::value.eq(value)))
        .on_conflict_do_nothing()
        .execute(c)
        .map(|n| n == 1))
}

/// Copies a SQLite database, consistently and while others write, into
/// an empty file (`VACUUM INTO`). `false` on PostgreSQL, which has its own
/// tools.
pub fn backup_sqlite_into(conn: &mut DbConn, path: &str) -> QueryResult<bool> {
    match conn {
        DbConn::Sqlite(c) => diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(path)
            .execute(c)
            .map(|_| true),
        DbConn::Pg(_) => Ok(false),
    }
}

/// Name of the stored operator token hash in `meta`.
pub const OPERATOR_TOKEN_META: &str = "operator_token_sha256";

/// Sets a `meta` value, replacing the one stored.
pub fn meta_set(conn: &mut DbConn, name: &str, value: &str) -> QueryResult<()> {
    crate::on_backend!(conn, |c| diesel::insert_into(meta::table)
        .values((meta::name.eq(name), meta::value.eq(value)))
        .on_conflict(meta::name)
        .do_update()
        .set(meta::value.eq(value))
        .execute(c)
        .map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pool::open;

    #[test]
    fn migrations_run_up_down_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("t.db"));
        let mut conn = establish(&target).unwrap();
        assert!(run_migrations(&mut conn).unwrap() >= 1);
        assert!(migrations_current(&mut conn));
        revert_migrations(&mut conn).unwrap();
        assert!(!migrations_current(&mut conn));
        assert!(run_migrations(&mut conn).unwrap() >= 1);
        assert!(migrations_current(&mut conn));
    }

    #[test]
    fn a_different_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("t.db"));
        open(&target, &MasterKey::from_bytes([1; 32]), 2).unwrap();
        open(&target, &MasterKey::from_bytes([1; 32]), 2).unwrap();
        assert!(matches!(
            open(&target, &MasterKey::from_bytes([2; 32]), 2),
            Err(OpenError::WrongMasterKey)
        ));
    }
}
