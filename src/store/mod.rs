//! Diesel storage: the schema, connections and migrations, and the
//! operations on tenants, keys, the ledger and the consent state. Knows
//! nothing of HTTP.

pub mod append;
pub mod audit;
pub mod changes;
pub mod channels;
pub mod connection;
pub mod consent;
pub mod dead_letters;
pub mod documents;
pub mod entry_points;
pub mod erasure;
pub mod events;
pub mod forms;
pub mod group_commit;
pub mod idempotency;
pub mod imports;
pub mod ivr_flows;
pub mod links;
pub mod log;
pub mod pool;
pub mod prepared;
pub mod restore;
pub mod retention;
pub mod reviews;
pub mod schema;
mod sql_types;
pub mod statements;
pub mod subjects;
pub mod suppression;
pub mod tenants;

pub use connection::DbConn;
pub use pool::DbPool;

/// Errors the store reports besides database failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("{0}")]
    Rejected(Rejection),
    /// A stored document that no longer reads (written by hand, or by a
    /// version that wrote another shape).
    #[error("unreadable stored data: {0}")]
    Unreadable(String),
}

/// A refusal that depends on stored state, decided inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the tenant id exists or existed")]
    TenantExists,
    #[error("the brand exists")]
    BrandExists,
    /// What the caller asked for does not exist (or is another tenant's):
    /// the answer's detail.
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("this is the tenant's last active admin key (or the last that does not expire)")]
    LastAdminKey,
    #[error("the brand was retired")]
    BrandRetired,
    #[error("captured_at is more than 60 s after recorded_at")]
    CapturedInFuture,
    #[error("the idempotency key was taken over by a newer request")]
    IdempotencyLost,
    #[error("another request or process took the import over")]
    ImportTakenOver,
    #[error("the identity was erased after this opt-in was captured")]
    Suppressed,
    #[error("the identity is erased and has no newer subject: nothing to record")]
    SuppressedNothingToRecord,
    #[error("the form id exists")]
    FormExists,
    #[error("the evidence names a document the tenant does not have")]
    UnknownDocument,
    #[error("the evidence's document_sha256 is not the named document's hash")]
    DocumentMismatch,
    #[error("the tenant has as many event endpoints as it may")]
    EndpointLimit,
    #[error("only a failed delivery is retried")]
    DeliveryNotFailed,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Whether a lookup key can name a stored row at all: PostgreSQL text holds
/// no NUL (it refuses the query), and nothing stored has one, so such a key
/// finds nothing on either backend.
pub fn can_name_a_row(key: &str) -> bool {
    !key.contains('\0')
}

/// The first row a query finds, if any: `.first(conn).optional()` without
/// its `LIMIT ?`, run on the backend's own connection:
/// `one_row!(conn, query)`. For queries by a unique key, or ordered so that
/// the first row is the one.
///
/// - SQLite plans a statement with the value bound to its `LIMIT`, so every
///   run that binds it again prepares the statement anew
///   (`sqlite3Reprepare`: in a profile of single checks, a third of the
///   server's time); this steps the cached statement once instead.
/// - Through diesel's `MultiConnection` every run renders the statement's
///   SQL text again, even when the statement is cached (29% of the same
///   profile); on the backend's own connection a cached statement is found
///   by its type. The query is written once and compiled for each backend.
#[macro_export]
macro_rules! one_row {
    ($conn:expr, $query:expr) => {
        $crate::on_backend!($conn, |c| $crate::store::first_of(c, $query))
    };
}

/// [`one_row!`] of a row that must exist (`NotFound` otherwise).
#[macro_export]
macro_rules! the_row {
    ($conn:expr, $query:expr) => {
        $crate::one_row!($conn, $query).and_then(|row| row.ok_or(diesel::result::Error::NotFound))
    };
}

/// Every row a query finds, `.load(conn)` on the backend's own connection
/// (see [`one_row!`]): `all_rows!(conn, query)`. For the hot paths.
#[macro_export]
macro_rules! all_rows {
    ($conn:expr, $query:expr) => {
        $crate::on_backend!($conn, |c| diesel::RunQueryDsl::load($query, c))
    };
}

/// A write statement run on the backend's own connection (see
/// [`one_row!`]): `execute!(conn, diesel::insert_into(…)…)`. For the append
/// path.
#[macro_export]
macro_rules! execute {
    ($conn:expr, $query:expr) => {
        $crate::on_backend!($conn, |c| diesel::RunQueryDsl::execute($query, c))
    };
}

/// `.get_result(conn)` on the backend's own connection (see [`one_row!`]).
#[macro_export]
macro_rules! get_result {
    ($conn:expr, $query:expr) => {
        $crate::on_backend!($conn, |c| diesel::RunQueryDsl::get_result($query, c))
    };
}

/// The first row of `query` on `conn`, stepping the statement once.
pub fn first_of<'q, C, Q, U>(conn: &mut C, query: Q) -> diesel::QueryResult<Option<U>>
where
    C: diesel::connection::LoadConnection,
    Q: diesel::query_dsl::LoadQuery<'q, C, U> + 'q,
    U: 'q,
{
    let mut rows = query.load_iter::<U, diesel::connection::DefaultLoadingMode>(conn)?;
    rows.next().transpose()
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    crate::domain::time::Timestamp::now().millis()
}

/// A migrated SQLite database in a temporary directory with one bare
/// tenant `t` (no key, brand or checkpoint), for the store's unit tests.
#[cfg(test)]
pub(crate) fn test_db_with_tenant() -> (tempfile::TempDir, DbConn) {
    use diesel::RunQueryDsl;
    let dir = tempfile::tempdir().unwrap();
    let target = crate::config::DatabaseTarget::Sqlite(dir.path().join("t.db"));
    let mut conn = connection::establish(&target).unwrap();
    connection::run_migrations(&mut conn).unwrap();
    diesel::insert_into(schema::tenants::table)
        .values((
            diesel::ExpressionMethods::eq(schema::tenants::id, "t"),
            diesel::ExpressionMethods::eq(schema::tenants::origin, "o/t"),
            diesel::ExpressionMethods::eq(
                schema::tenants::head_hash,
                crate::ledger::entry::ZERO_HASH,
            ),
            diesel::ExpressionMethods::eq(schema::tenants::created_at, 0i64),
        ))
        .execute(&mut conn)
        .unwrap();
    (dir, conn)
}

/// The tenant `t` the store's unit tests write to.
#[cfg(test)]
pub(crate) fn tenant_t() -> crate::domain::access::TenantId {
    crate::domain::access::TenantId::parse("t").expect("a tenant id")
}
