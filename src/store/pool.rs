//! The connection pool: diesel's r2d2 manager with a cheaper check-out test
//! and the per-connection settings, and opening the database for serving.

use super::connection::{
    apply_pragmas, check_canary, establish, ping, pooler_of, run_migrations, unprepared, DbConn,
    OpenError,
};
use crate::config::{DatabaseTarget, Pooler};
use crate::keys::MasterKey;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::Connection;
use std::time::{Duration, Instant};

pub type DbPool = Pool<Manager>;
/// A connection checked out of the pool.
pub type PooledConn = diesel::r2d2::PooledConnection<Manager>;

/// A pooled connection, with when it last went back to the pool and
/// whether it was found to have lost its server.
pub struct Pooled {
    conn: DbConn,
    returned: Instant,
    lost: bool,
}

impl std::ops::Deref for Pooled {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl Pooled {
    /// After work on this connection failed on the server's side: whether
    /// the server is gone (PostgreSQL restarted or failed over). Such a
    /// connection is dropped when it goes back to the pool.
    pub fn check_after_failure(&mut self) -> bool {
        if self.conn.is_postgres() && ping(&mut self.conn).is_err() {
            self.lost = true;
        }
        self.lost
    }
}

/// A connection that went back to the pool this recently is handed out
/// again without a round trip to test it; one idle for longer is tested
/// first (`SELECT 1`), so that a database restart during a quiet time costs
/// no request. A connection whose server went away while it was trusted
/// fails its request with 503 `not_ready`, and [`Pooled::check_after_failure`]
/// has the pool drop it (the failed query alone does not always tell diesel
/// the connection is gone).
pub const TRUSTED_AFTER_USE: Duration = Duration::from_secs(1);

/// The pool's manager: diesel's, with the test on check-out skipped for
/// connections that just worked (on PostgreSQL it is a round trip that
/// costs a check a fifth of its time).
#[derive(Debug)]
pub struct Manager {
    inner: ConnectionManager<DbConn>,
    target: DatabaseTarget,
}

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        // On the backend's own connection, so that a refusal says why
        // (through diesel's MultiConnection it only says the URL is not one
        // it could open).
        let conn = match &self.target {
            DatabaseTarget::Postgres(url) => {
                let mut conn = PgConnection::establish(url.expose())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                if url.pooler() == Pooler::Transaction {
                    unprepared(&mut conn);
                }
                DbConn::Pg(conn)
            }
            DatabaseTarget::Sqlite(_) => self.inner.connect()?,
        };
        Ok(Pooled {
            conn,
            returned: Instant::now(),
            lost: false,
        })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), Self::Error> {
        if pooled.returned.elapsed() < TRUSTED_AFTER_USE {
            return Ok(());
        }
        self.inner.is_valid(&mut pooled.conn)
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        pooled.returned = Instant::now();
        pooled.lost || self.inner.has_broken(&mut pooled.conn)
    }
}

#[derive(Debug)]
struct Pragmas(Pooler);

impl CustomizeConnection<Pooled, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, pooled: &mut Pooled) -> Result<(), diesel::r2d2::Error> {
        apply_pragmas(&mut pooled.conn, self.0).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// How long a request (and the pool, as it opens) waits for a connection.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the database: migrations, the canary, then the pool of `size`
/// connections (`CONSENT_LEDGER_DB_POOL_SIZE`: the most database work that
/// runs at once).
pub fn open(target: &DatabaseTarget, master: &MasterKey, size: u32) -> Result<DbPool, OpenError> {
    let mut conn = establish(target)?;
    run_migrations(&mut conn)?;
    check_canary(&mut conn, master)?;
    drop(conn);
    let url = match target {
        DatabaseTarget::Sqlite(path) => path.to_string_lossy().into_owned(),
        DatabaseTarget::Postgres(url) => url.expose().to_owned(),
    };
    let pooler = pooler_of(target);
    let manager = Manager {
        inner: ConnectionManager::<DbConn>::new(url),
        target: target.clone(),
    };
    Pool::builder()
        .max_size(size)
        .connection_timeout(CONNECTION_TIMEOUT)
        .connection_customizer(Box::new(Pragmas(pooler)))
        .build(manager)
        .map_err(|e| match target {
            DatabaseTarget::Sqlite(path) => OpenError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            },
            DatabaseTarget::Postgres(url) => OpenError::Pool {
                target: url.redacted(),
                size,
                waited: CONNECTION_TIMEOUT.as_secs(),
                message: e.to_string(),
            },
        })
}
