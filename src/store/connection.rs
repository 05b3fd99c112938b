//! Connections and migrations. SQLite runs in WAL mode with a busy timeout,
//! foreign keys, full fsync and secure delete on every pooled connection.

use crate::config::DatabaseTarget;
use crate::keys::MasterKey;
use crate::store::schema::meta;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::path::Path;
use std::time::Duration;

pub type DbConn = SqliteConnection;
pub type DbPool = Pool<ConnectionManager<DbConn>>;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How long a writer waits for SQLite's lock before giving up.
const BUSY_TIMEOUT_MS: u32 = 10_000;

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        apply_pragmas(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

fn apply_pragmas(conn: &mut DbConn) -> QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA cache_size = -32768;
         PRAGMA mmap_size = 1073741824;"
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the SQLite database {path}: {message}")]
    Open { path: String, message: String },
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("the master key does not open this database's canary: this is not the key the database was created with (check CONSENT_LEDGER_MASTER_KEY_FILE)")]
    WrongMasterKey,
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

fn sqlite_path(target: &DatabaseTarget) -> &Path {
    match target {
        DatabaseTarget::Sqlite(path) => path,
    }
}

/// One connection, outside the pool (CLI commands, migrations).
pub fn establish(target: &DatabaseTarget) -> Result<DbConn, OpenError> {
    let path = sqlite_path(target);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| OpenError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let url = path.to_string_lossy();
    let mut conn = SqliteConnection::establish(&url).map_err(|e| OpenError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    apply_pragmas(&mut conn)?;
    Ok(conn)
}

/// Runs pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, OpenError> {
    conn.run_pending_migrations(SQLITE_MIGRATIONS)
        .map(|done| done.len())
        .map_err(|e| OpenError::Migrate(e.to_string()))
}

/// Whether the schema is current (for `/readyz`).
pub fn migrations_current(conn: &mut DbConn) -> bool {
    conn.has_pending_migration(SQLITE_MIGRATIONS)
        .map(|pending| !pending)
        .unwrap_or(false)
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
            diesel::insert_into(meta::table)
                .values((
                    meta::name.eq("canary"),
                    meta::value.eq(master.make_canary()),
                ))
                .execute(conn)?;
            Ok(())
        }
    }
}

/// Opens the database: migrations, the canary, then the pool.
pub fn open(target: &DatabaseTarget, master: &MasterKey) -> Result<DbPool, OpenError> {
    let mut conn = establish(target)?;
    run_migrations(&mut conn)?;
    check_canary(&mut conn, master)?;
    drop(conn);
    let path = sqlite_path(target);
    let manager = ConnectionManager::<DbConn>::new(path.to_string_lossy());
    Pool::builder()
        .max_size(8)
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)
        .map_err(|e| OpenError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })
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
    diesel::insert_into(meta::table)
        .values((meta::name.eq(name), meta::value.eq(value)))
        .on_conflict_do_nothing()
        .execute(conn)
        .map(|n| n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_up_down_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("t.db"));
        let mut conn = establish(&target).unwrap();
        assert!(run_migrations(&mut conn).unwrap() >= 1);
        assert!(migrations_current(&mut conn));
        conn.revert_all_migrations(SQLITE_MIGRATIONS).unwrap();
        assert!(!migrations_current(&mut conn));
        assert!(run_migrations(&mut conn).unwrap() >= 1);
        assert!(migrations_current(&mut conn));
    }

    #[test]
    fn a_different_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = DatabaseTarget::Sqlite(dir.path().join("t.db"));
        open(&target, &MasterKey::from_bytes([1; 32])).unwrap();
        open(&target, &MasterKey::from_bytes([1; 32])).unwrap();
        assert!(matches!(
            open(&target, &MasterKey::from_bytes([2; 32])),
            Err(OpenError::WrongMasterKey)
        ));
    }
}
