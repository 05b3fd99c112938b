//! One `ApiError`, rendered as RFC 9457 `application/problem+json` with a
//! stable snake_case `code`. A 500 keeps its cause in the log and shows
//! nothing of it.

use crate::domain::evidence::FieldError;
use crate::domain::number::NumberError;
pub use crate::domain::problem::{ErrorCode, Invalid};
use crate::services::signer::SignError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// A problem answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Why a 500 happened; logged, never shown.
    cause: Option<String>,
    /// Seconds for `Retry-After` (429 and 503 of the limits).
    retry_after: Option<u64>,
    /// Close the connection after answering (a body left unread).
    close: bool,
}

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/<code>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case code.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

/// One field's problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    pub field: String,
    pub code: String,
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::new(invalid.code, invalid.detail).with_errors(invalid.errors)
    }
}

impl ApiError {
    /// A problem of `code`, whose status the code carries.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            cause: None,
            retry_after: None,
            close: false,
        }
    }

    /// 429 `rate_limited`, to retry after `seconds`.
    pub fn rate_limited(detail: impl Into<String>, seconds: u64) -> Self {
        Self::new(ErrorCode::RateLimited, detail).retry_after(seconds)
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Closes the connection after the answer (its body was not read).
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).expect("every code has a valid status")
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// A problem of `code` naming one field and its field code.
    pub fn for_field(
        code: ErrorCode,
        field: &str,
        field_code: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(code, detail).with_errors(vec![FieldError::new(field, field_code)])
    }

    /// 422 `invalid_request` naming one field.
    pub fn invalid_field(field: &str, code: &'static str, detail: impl Into<String>) -> Self {
        Self::for_field(ErrorCode::InvalidRequest, field, code, detail)
    }

    pub fn invalid_number(field: &str, error: NumberError) -> Self {
        Self::for_field(
            ErrorCode::InvalidNumber,
            field,
            error.code(),
            error.to_string(),
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    /// A 500 whose cause goes to the log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(
                ErrorCode::Internal,
                "The request failed on our side; it has been logged.",
            )
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("/problems/{}", self.code),
            title: self.code.title().to_owned(),
            status: self.code.status(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_owned(),
            errors: self
                .errors
                .iter()
                .map(|e| ProblemField {
                    field: e.field.clone(),
                    code: e.code.to_owned(),
                })
                .collect(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.code,
            self.detail
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            tracing::error!(cause = %cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if self.code == ErrorCode::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        // A database that is away or busy is worth a retry in a moment.
        let transient = matches!(self.code, ErrorCode::NotReady | ErrorCode::Busy).then_some(1);
        if let Some(seconds) = self.retry_after.or(transient) {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.close {
            response.force_close();
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        Self::from(&e)
    }
}

impl From<&diesel::result::Error> for ApiError {
    fn from(e: &diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // The server went away (a restart, a failover): worth a retry.
            // (Not UnableToSendCommand: libpq also says that of requests it
            // refuses itself; a dead connection behind it is found by the
            // ping after a failure, see `Pooled::check_after_failure`.)
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                Self::connection_lost(format!("database: {e}"))
            }
            // A connection whose transaction state broke with it (diesel
            // refuses to use it): nothing of this request committed.
            Error::BrokenTransactionManager => {
                Self::connection_lost(format!("database: {e}"))
            }
            // The server ended the session or is going down; libpq may
            // report it before it marks the connection bad.
            Error::DatabaseError(_, info) if server_went_away(info.message()) => {
                Self::connection_lost(format!("database: {e}"))
            }
            Error::DatabaseError(_, info) if out_of_storage(info.message()) => {
                Self::insufficient_storage(format!("database: {e}"))
            }
            Error::DatabaseError(_, info) if gave_up_waiting(info.message()) => {
                Self::new(
                    ErrorCode::Busy,
                    "The database is busy with other writers; the request's transaction was rolled back. Retry after a moment.",
                )
                .with_cause(format!("database: {e}"))
            }
            other => Self::internal(format!("database: {other}")),
        }
    }
}

/// Whether a database error says it gave up waiting: SQLite's busy timeout,
/// PostgreSQL's `lock_timeout`, `statement_timeout` or deadlock detection
/// (messages in English, PostgreSQL's default `lc_messages`).
fn gave_up_waiting(message: &str) -> bool {
    message.starts_with("database is locked")
        || message.starts_with("deadlock detected")
        || message.starts_with("canceling statement due to lock timeout")
        || message.starts_with("canceling statement due to statement timeout")
}

/// Whether a database error says the server ended the session or cannot
/// take one now: PostgreSQL's `admin_shutdown` (`pg_terminate_backend`, a
/// fast shutdown), `crash_shutdown`, `cannot_connect_now`, and libpq's
/// words for a connection that broke (messages in English).
fn server_went_away(message: &str) -> bool {
    message.starts_with("terminating connection due to administrator command")
        || message.starts_with("terminating connection because of crash of another server process")
        || message.starts_with("the database system is shutting down")
        || message.starts_with("the database system is starting up")
        || message.starts_with("the database system is in recovery mode")
        || message.contains("server closed the connection unexpectedly")
        || message.starts_with("no connection to the server")
        || message.starts_with("could not receive data from server")
        || message.starts_with("could not send data to server")
}

/// Whether a database error says its disk took no more: SQLite's
/// `SQLITE_FULL`, `SQLITE_READONLY` and `SQLITE_IOERR` (a write the file
/// system refused), PostgreSQL's `disk_full` and a read-only data
/// directory (messages in English).
fn out_of_storage(message: &str) -> bool {
    message.starts_with("database or disk is full")
        || message.starts_with("attempt to write a readonly database")
        || message.starts_with("disk I/O error")
        || message.contains("No space left on device")
        || message.contains("Read-only file system")
}

impl From<crate::store::StoreError> for ApiError {
    /// A store failure: a refusal decided on stored state answers its
    /// precise problem; anything else is a 500 with its cause in the log.
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Database(e) => e.into(),
            crate::store::StoreError::Rejected(refusal) => refusal.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::store::Rejection> for ApiError {
    /// Every refusal decided on stored state, answered in one place.
    fn from(refusal: crate::store::Rejection) -> Self {
        use crate::domain::request;
        use crate::store::Rejection;
        match refusal {
            Rejection::TenantExists => {
                ApiError::new(ErrorCode::TenantExists, "a tenant with this id exists or existed")
            }
            Rejection::BrandExists => ApiError::new(
                ErrorCode::BrandExists,
                "the tenant already has a brand with this name (compared case-insensitively)",
            ),
            Rejection::NotFound(what) => ApiError::not_found(what),
            Rejection::LastAdminKey => ApiError::new(
                ErrorCode::LastAdminKey,
                "this is the tenant's last active admin key; create another admin key first",
            ),
            Rejection::BrandRetired => request::brand_retired().into(),
            Rejection::CapturedInFuture => ApiError::for_field(
                ErrorCode::CapturedAtInFuture,
                "captured_at",
                "in_future",
                "`captured_at` is more than 60 seconds after the server's clock",
            ),
            Rejection::ImportTakenOver => ApiError::new(
                ErrorCode::ImportRunning,
                "another request or process took this import over and records it now",
            ),
            Rejection::IdempotencyLost => ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "a newer request with this Idempotency-Key took it over; nothing was recorded by this one",
            ),
            Rejection::Suppressed => ApiError::for_field(
                ErrorCode::Suppressed,
                "captured_at",
                "before_erasure",
                "this number or user id was erased after `captured_at`: only an opt-in captured after the erasure starts a new subject",
            ),
            // Every caller answers it (200 `{"suppressed":true}`, or nothing
            // recorded); reaching here is a bug.
            Rejection::SuppressedNothingToRecord => ApiError::internal(refusal),
            Rejection::FormExists => ApiError::new(
                ErrorCode::FormExists,
                "the tenant already has a form with this id: PUT /v1/forms/{id} changes it",
            ),
            Rejection::UnknownDocument => request::unknown_document().into(),
            Rejection::DocumentMismatch => request::document_mismatch().into(),
            Rejection::EndpointLimit => ApiError::new(
                ErrorCode::EndpointLimit,
                "the tenant has 10 event endpoints: delete one first",
            ),
            Rejection::DeliveryNotFailed => ApiError::new(
                ErrorCode::DeliveryNotFailed,
                "only a failed delivery is retried; a pending one is retried by itself",
            ),
        }
    }
}

impl From<crate::services::error::ServiceError> for ApiError {
    fn from(e: crate::services::error::ServiceError) -> Self {
        use crate::services::error::ServiceError;
        match e {
            ServiceError::Invalid(invalid) => invalid.into(),
            ServiceError::Store(e) => e.into(),
            ServiceError::Signing(e) => e.into(),
        }
    }
}

impl From<crate::services::tenants::TenantError> for ApiError {
    fn from(e: crate::services::tenants::TenantError) -> Self {
        use crate::services::tenants::TenantError;
        match e {
            TenantError::Exists => crate::store::Rejection::TenantExists.into(),
            TenantError::Store(e) => e.into(),
            TenantError::Signing(e) => e.into(),
        }
    }
}

impl From<SignError> for ApiError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::Refused(reason) => {
                tracing::error!(%reason, "checkpoint signing refused");
                ApiError::new(ErrorCode::SigningRefused, reason)
            }
            SignError::Database(e) => e.into(),
            SignError::Storage { .. } => ApiError::insufficient_storage(e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::new(
            ErrorCode::NotReady,
            "The database is not reachable right now.",
        )
        .with_cause(format!("pool: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal(format!("blocking task: {e}"))
    }
}

/// When to try again after a 507: long enough for an operator's alert.
const STORAGE_RETRY_SECS: u64 = 5;

impl ApiError {
    /// The connection to the database broke (a restart, a failover); the
    /// cause goes to the log.
    pub fn connection_lost(cause: String) -> Self {
        Self::new(
            ErrorCode::NotReady,
            "The database is not reachable right now.",
        )
        .with_cause(cause)
    }

    /// 507: the disk that keeps the log is full or read-only; the cause
    /// goes to the log.
    pub fn insufficient_storage(cause: String) -> Self {
        Self::new(
            ErrorCode::InsufficientStorage,
            "The disk that keeps the log takes no more writes right now (full or read-only); nothing was recorded.",
        )
        .with_cause(cause)
        .retry_after(STORAGE_RETRY_SECS)
    }

    /// Why the request failed, for the log (never shown to the client).
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    fn with_cause(mut self, cause: String) -> Self {
        self.cause = Some(cause);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_that_deserve_a_retry_answer_503() {
        use diesel::result::{DatabaseErrorKind, Error};
        let db = |kind, message: &str| -> ApiError {
            Error::DatabaseError(kind, Box::new(message.to_owned())).into()
        };
        for waited in [
            "database is locked",
            "deadlock detected",
            "canceling statement due to lock timeout",
            "canceling statement due to statement timeout",
        ] {
            let e = db(DatabaseErrorKind::Unknown, waited);
            assert_eq!(
                (e.status().as_u16(), e.code),
                (503, ErrorCode::Busy),
                "{waited}"
            );
        }
        let closed = db(
            DatabaseErrorKind::ClosedConnection,
            "server closed the connection",
        );
        assert_eq!(
            (closed.status().as_u16(), closed.code),
            (503, ErrorCode::NotReady)
        );
        for full in [
            "database or disk is full",
            "attempt to write a readonly database",
            "disk I/O error",
            "could not extend file \"base/16384/2619\": No space left on device",
            "could not write to file \"pg_wal/xlogtemp.123\": No space left on device",
        ] {
            let e = db(DatabaseErrorKind::Unknown, full);
            assert_eq!(
                (e.status().as_u16(), e.code, e.retry_after),
                (
                    507,
                    ErrorCode::InsufficientStorage,
                    Some(STORAGE_RETRY_SECS)
                ),
                "{full}"
            );
        }
        for gone in [
            "terminating connection due to administrator command",
            "terminating connection because of crash of another server process",
            "the database system is shutting down",
            "the database system is starting up",
            "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            "no connection to the server\n",
            "could not receive data from server: Connection reset by peer",
        ] {
            let e = db(DatabaseErrorKind::Unknown, gone);
            assert_eq!((e.status().as_u16(), e.code), (503, ErrorCode::NotReady), "{gone}");
        }
        let broken: ApiError = Error::BrokenTransactionManager.into();
        assert_eq!(
            (broken.status().as_u16(), broken.code),
            (503, ErrorCode::NotReady)
        );
        let other = db(DatabaseErrorKind::Unknown, "syntax error at or near");
        assert_eq!(
            (other.status().as_u16(), other.code),
            (500, ErrorCode::Internal)
        );
        let unique = db(DatabaseErrorKind::UniqueViolation, "duplicate key");
        assert_eq!(unique.code, ErrorCode::Internal);
    }

    #[test]
    fn a_database_away_or_busy_says_when_to_retry() {
        use actix_web::ResponseError;
        for e in [
            ApiError::connection_lost("gone".into()),
            ApiError::new(ErrorCode::Busy, "locked"),
        ] {
            let response = e.error_response();
            assert_eq!(
                response.headers().get(header::RETRY_AFTER).unwrap(),
                "1",
                "{}",
                e.code
            );
        }
        let internal = ApiError::internal("broken").error_response();
        assert!(!internal.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("disk on fire at /secret/path");
        let body = serde_json::to_string(&e.problem()).unwrap();
        assert!(!body.contains("secret"));
        assert!(body.contains("\"code\":\"internal\""));
    }
}
