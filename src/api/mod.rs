//! HTTP handlers, one file per resource, composed from `domain` and `store`.

pub mod audit;
pub mod auth;
pub mod body;
pub mod brands;
pub mod changes;
pub mod channel_settings;
pub mod checks;
pub mod dead_letters;
pub mod documents;
pub mod entries;
pub mod entry_points;
pub mod events;
pub mod export;
pub mod forms;
pub mod health;
pub mod idempotent;
pub mod imports;
pub mod ivr_flows;
pub mod json;
pub mod keys;
pub mod limits;
pub mod log;
pub mod observe;
pub mod pages;
pub mod paging;
pub mod records;
pub mod reviews;
pub mod statements;
pub mod subjects;
pub mod tenants;
pub mod trail;
pub mod webhooks;

use crate::config::Settings;
use crate::domain::access::TenantId;
use crate::error::ApiError;
use crate::keys::MasterKey;
use crate::services::signer::Signer;
use crate::store::group_commit::Write;
use crate::store::{DbConn, DbPool};
use std::sync::Arc;

/// What every handler can reach.
pub struct AppState {
    pub pool: DbPool,
    pub master: Arc<MasterKey>,
    pub settings: Arc<Settings>,
    pub signer: Arc<Signer>,
    /// Upper Merkle nodes for serving proofs (immutable once stored).
    pub nodes: Arc<crate::store::log::NodeCache>,
    /// SHA-256 of the configured operator token; `None`: the stored one counts.
    pub configured_operator_sha256: Option<String>,
    /// Where "now" comes from (the system clock but in tests).
    pub clock: crate::domain::time::Clock,
    /// Tests only: a write under an `Idempotency-Key` waits here for a
    /// permit once its key is taken, so a test can hold it past the takeover.
    pub write_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Connection, body, rate and export limits with their counters.
    pub guards: Arc<limits::Guards>,
    /// Writes waiting for their log's next group commit.
    pub groups: Arc<crate::store::group_commit::Groups>,
    /// Whether short reads run on the HTTP worker (SQLite; see [`AppState::read`]).
    pub inline_reads: bool,
}

impl AppState {
    /// Now, by the application's clock.
    pub fn now(&self) -> crate::domain::time::Timestamp {
        self.clock.now()
    }

    /// Runs a write to `tenant`'s log in the log's next group commit
    /// (`store/group_commit.rs`): it shares one transaction and one sync
    /// with the writes queued beside it, in its own savepoint, and its
    /// answer comes only once that transaction has committed. `work` must
    /// not open a transaction of its own other than through
    /// `immediate_transaction` (which becomes a savepoint).
    pub async fn write<T, F>(&self, tenant: &TenantId, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let write = Grouped {
            work: Some(Box::new(work)),
            done: None,
            answer,
            span: tracing::Span::current(),
        };
        if self.groups.submit(tenant, Box::new(write)) {
            let (groups, pool, tenant) =
                (self.groups.clone(), self.pool.clone(), tenant.to_owned());
            actix_web::rt::task::spawn_blocking(move || groups.lead(&tenant, &pool));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(ApiError::internal("a grouped write was dropped unanswered")))
    }

    /// Runs a short read (a few indexed lookups: a key, a check) at once on
    /// this thread when the database is SQLite and a pooled connection is
    /// free, else on the blocking pool like [`AppState::db`]. On SQLite
    /// such a read takes microseconds and never waits for a writer (WAL),
    /// less than the two thread switches of the blocking pool; PostgreSQL
    /// reads wait on the network, so they always go to the blocking pool.
    pub async fn read<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        self.read_unless(false, work).await
    }

    /// [`AppState::read`], or on the blocking pool when the work `writes`
    /// (a read that may have to sign first, such as a stated check).
    pub async fn read_unless<T, F>(&self, writes: bool, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        if self.inline_reads && !writes {
            if let Some(mut conn) = self.pool.try_get() {
                return run_on(&mut conn, work);
            }
        }
        self.db(work).await
    }

    /// Runs blocking database work on the blocking pool.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        self.db_waiting(None, work).await
    }

    /// [`AppState::db`], waiting at most `patience` for a connection (the
    /// pool's own timeout otherwise): a probe that must answer soon.
    pub async fn db_waiting<T, F>(
        &self,
        patience: Option<std::time::Duration>,
        work: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, ApiError> + Send + 'static,
    {
        let pool = self.pool.clone();
        // Keep the request's span (its request id) on the blocking thread.
        let span = tracing::Span::current();
        actix_web::web::block(move || {
            let _entered = span.enter();
            let waiting = std::time::Instant::now();
            let conn = match patience {
                Some(patience) => pool.get_timeout(patience),
                None => pool.get(),
            };
            crate::metrics::pool_wait(waiting.elapsed().as_secs_f64());
            run_on(&mut conn?, work)
        })
        .await?
    }
}

/// Runs `work` on a pooled connection; a server-side failure that lost the
/// connection answers 503 and has the pool drop it.
fn run_on<T>(
    conn: &mut crate::store::pool::PooledConn,
    work: impl FnOnce(&mut DbConn) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let done = work(conn);
    if let Err(e) = &done {
        if e.status().is_server_error() && conn.check_after_failure() {
            return Err(ApiError::connection_lost(format!(
                "the connection to the database was lost: {}",
                e.cause().unwrap_or(e.code.as_str())
            )));
        }
    }
    done
}

/// Database work that answers a `T`.
type Work<T> = Box<dyn FnOnce(&mut DbConn) -> Result<T, ApiError> + Send>;

/// Work to run in a group commit, sending its answer once the group is over.
struct Grouped<T> {
    work: Option<Work<T>>,
    done: Option<Result<T, ApiError>>,
    answer: tokio::sync::oneshot::Sender<Result<T, ApiError>>,
    /// The request's span (its request id), entered while the work runs.
    span: tracing::Span,
}

impl<T: Send> Write for Grouped<T> {
    fn run(&mut self, conn: &mut DbConn) -> bool {
        let _entered = self.span.enter();
        let Some(work) = self.work.take() else {
            return false;
        };
        let done = work(conn);
        let ok = done.is_ok();
        self.done = Some(done);
        ok
    }

    fn settle(self: Box<Self>, group: Result<(), &diesel::result::Error>) {
        let answer = match (self.done, group) {
            // A server-side failure of its own in a group that failed is
            // the group's failure (the server went away under both).
            (Some(Err(error)), Err(e)) if error.status().is_server_error() => {
                Err(ApiError::from(e))
            }
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(ApiError::internal("the write panicked")),
            (_, Err(e)) => Err(ApiError::from(e)),
        };
        let _ = self.answer.send(answer);
    }
}

/// The response of `4XX` problems in the OpenAPI document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn settled(
        done: Result<u8, ApiError>,
        group: Result<(), &diesel::result::Error>,
    ) -> Result<u8, ApiError> {
        let (answer, mut received) = tokio::sync::oneshot::channel();
        let write = Box::new(Grouped {
            work: None,
            done: Some(done),
            answer,
            span: tracing::Span::none(),
        });
        write.settle(group);
        received.try_recv().expect("settled")
    }

    #[test]
    fn a_write_that_failed_with_its_group_answers_for_the_group() {
        use diesel::result::{DatabaseErrorKind, Error};
        let lost = Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("the connection to the database was lost".to_owned()),
        );
        let own = ApiError::internal("database: an error the statement met first");
        let answer = settled(Err(own), Err(&lost)).unwrap_err();
        assert_eq!(
            (answer.status().as_u16(), answer.code),
            (503, ErrorCode::NotReady)
        );
        // A refusal of its own stays what it was, whatever the group did.
        let refused = ApiError::new(ErrorCode::InvalidRequest, "no");
        let answer = settled(Err(refused), Err(&lost)).unwrap_err();
        assert_eq!(answer.code, ErrorCode::InvalidRequest);
        // A write that succeeded in a committed group answers its value.
        assert_eq!(settled(Ok(7), Ok(())).unwrap(), 7);
    }
}
