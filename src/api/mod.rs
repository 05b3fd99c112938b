//! HTTP handlers, one file per resource, composed from `domain` and `store`.

pub mod audit;
pub mod auth;
pub mod body;
pub mod brands;
pub mod channel_settings;
pub mod checks;
pub mod dead_letters;
pub mod documents;
pub mod entries;
pub mod export;
pub mod forms;
pub mod health;
pub mod idempotent;
pub mod json;
pub mod keys;
pub mod limits;
pub mod log;
pub mod observe;
pub mod pages;
pub mod paging;
pub mod records;
pub mod subjects;
pub mod tenants;
pub mod trail;
pub mod webhooks;

use crate::config::Settings;
use crate::error::ApiError;
use crate::keys::MasterKey;
use crate::services::signer::Signer;
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
}

impl AppState {
    /// Now, by the application's clock.
    pub fn now(&self) -> crate::domain::time::Timestamp {
        self.clock.now()
    }

    /// Runs blocking database work on the blocking pool.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
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
            let conn = pool.get();
            crate::metrics::pool_wait(waiting.elapsed().as_secs_f64());
            let mut conn = conn?;
            let done = work(&mut conn);
            if let Err(e) = &done {
                if e.status().is_server_error() && conn.check_after_failure() {
                    return Err(ApiError::connection_lost(format!(
                        "the connection to the database was lost: {}",
                        e.cause().unwrap_or(e.code.as_str())
                    )));
                }
            }
            done
        })
        .await?
    }
}

/// The response of `4XX` problems in the OpenAPI document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
