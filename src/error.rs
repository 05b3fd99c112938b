//! One `ApiError`, rendered as RFC 9457 `application/problem+json` with a
//! stable snake_case `code`. A 500 keeps its cause in the log and shows
//! nothing of it.

use crate::domain::evidence::FieldError;
use crate::domain::number::NumberError;
use crate::services::signer::SignError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// Declares [`ErrorCode`] from one table: each code with its HTTP status,
/// title and what it means, so that a typo does not compile and the
/// registry (`GET /problems/{code}`) has one source.
macro_rules! problem_codes {
    ($($variant:ident = ($code:literal, $status:literal, $title:literal, $about:literal),)*) => {
        /// Every problem code the service answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable snake_case `code` of the problem.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                let status: u16 = match self {
                    $(ErrorCode::$variant => $status,)*
                };
                StatusCode::from_u16(status).expect("a valid status")
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $title,)*
                }
            }

            /// What the code means and what to do about it.
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $about,)*
                }
            }
        }
    };
}

problem_codes! {
    MalformedJson = ("malformed_json", 400, "Malformed JSON", "The body is not well-formed JSON, or not valid UTF-8."),
    MalformedBody = ("malformed_body", 400, "Malformed body", "The body could not be read, or is not the form this endpoint takes."),
    Unauthorized = ("unauthorized", 401, "Unauthorized", "No credentials, or credentials that are unknown, revoked or expired. Send `Authorization: Bearer <key>`. Webhooks: a missing or bad provider signature, account or business number."),
    Forbidden = ("forbidden", 403, "Forbidden", "The key is valid but lacks the role this operation needs, or a webhook handshake's verify token does not match."),
    NotFound = ("not_found", 404, "Not found", "No such resource for this tenant (another tenant's resources also answer 404)."),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed", "The path exists but not with this HTTP method; `Allow` lists the methods it takes."),
    TenantExists = ("tenant_exists", 409, "Tenant exists", "A tenant with this id exists or existed; tenant ids are never reused."),
    BrandExists = ("brand_exists", 409, "Brand exists", "The tenant already has a brand with this name (compared case-insensitively)."),
    LastAdminKey = ("last_admin_key", 409, "Last admin key", "Revoking this key would leave the tenant without an active admin key."),
    IdempotencyInProgress = ("idempotency_in_progress", 409, "Request in progress", "A request with this Idempotency-Key is still being processed; retry later."),
    PayloadTooLarge = ("payload_too_large", 413, "Payload too large", "The body exceeds the limit of this endpoint (JSON 1 MiB, batch 4 MiB, webhooks 3 MiB)."),
    UnsupportedMediaType = ("unsupported_media_type", 415, "Unsupported media type", "This endpoint takes `Content-Type: application/json`."),
    InvalidRequest = ("invalid_request", 422, "Invalid request", "One or more fields are missing, unknown or invalid; `errors` names each field."),
    InvalidNumber = ("invalid_number", 422, "Invalid phone number", "The number does not parse; `errors[].code` gives the reason: not_a_number, missing_region, invalid_country_code, too_short, too_long, not_valid_number or invalid_region."),
    InvalidEvidence = ("invalid_evidence", 422, "Invalid evidence", "The evidence object does not fit its capture channel's row; `errors` names each key."),
    UnknownBrand = ("unknown_brand", 422, "Unknown brand", "The brand or company name is not a brand of this tenant."),
    BrandRetired = ("brand_retired", 422, "Brand retired", "The brand is retired: it takes no new opt-ins."),
    BrandRequired = ("brand_required", 422, "Brand required", "The tenant has more than one active brand (or none), so the check must name one."),
    CompanyNameNotInText = ("company_name_not_in_text", 422, "Company name not in consent text", "The consent text must contain `company_name_shown` as a whole word (compared after NFC and case folding)."),
    CapturedAtInFuture = ("captured_at_in_future", 422, "Captured in the future", "`captured_at` is more than 60 seconds after the server's clock (the tolerance for clock skew)."),
    CapturedAtTooOld = ("captured_at_too_old", 422, "Captured too long ago", "`captured_at` is older than 30 days; an admin key may import it with `backfill: true`."),
    ReceivedAtInFuture = ("received_at_in_future", 422, "Received in the future", "An interaction's `received_at` is after the server's clock; there is no tolerance: omit it to mean now."),
    ReceivedAtTooOld = ("received_at_too_old", 422, "Received too long ago", "An interaction's `received_at` is more than 24 hours ago: that message opens no window any more."),
    UnknownDocument = ("unknown_document", 422, "Unknown document", "The paper evidence names a `document_id` that was never uploaded."),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "Idempotency key reused", "The Idempotency-Key was used with a different body on this route within 24 hours."),
    InvalidIdempotencyKey = ("invalid_idempotency_key", 422, "Invalid idempotency key", "An Idempotency-Key is 1 to 255 visible ASCII characters."),
    ConfirmationNotAvailable = ("confirmation_not_available", 422, "Confirmation not available", "Double opt-in needs inbound WhatsApp or SMS messages to confirm codes, which this version does not receive yet."),
    Internal = ("internal", 500, "Internal error", "Something failed on our side; the cause is in the service's log."),
    SigningRefused = ("signing_refused", 503, "Signing refused", "The database is not a consistent extension of the tree this instance signed before (restored from an older copy, or forked); nothing is signed until the missing entries are re-appended from a verified export."),
    NotReady = ("not_ready", 503, "Not ready", "The service cannot reach its database, or lost its connection during the request (a write may then have committed: retry with the same Idempotency-Key)."),
    Busy = ("busy", 503, "Busy", "The database stayed locked by other writers for 10 seconds, or a statement ran longer than 30 seconds; the request's transaction was rolled back. Retry after a moment, with the same Idempotency-Key."),
}

impl ErrorCode {
    /// The code named `text`, if there is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Why a 500 happened; logged, never shown.
    cause: Option<String>,
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

impl ApiError {
    /// A problem of `code`, whose status the code carries.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            cause: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
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
            status: self.status().as_u16(),
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
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // The server went away (a restart, a failover): worth a retry.
            // (Not UnableToSendCommand: libpq also says that of requests it
            // refuses itself; a dead connection behind it is found by the
            // ping after a failure, see `Pooled::check_after_failure`.)
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                Self::connection_lost(format!("database: {e}"))
            }
            Error::DatabaseError(_, ref info) if gave_up_waiting(info.message()) => {
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

impl From<crate::store::StoreError> for ApiError {
    /// A store failure that no caller turned into a precise answer.
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Database(e) => e.into(),
            other => Self::internal(other),
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
        let other = db(DatabaseErrorKind::Unknown, "syntax error at or near");
        assert_eq!(
            (other.status().as_u16(), other.code),
            (500, ErrorCode::Internal)
        );
        let unique = db(DatabaseErrorKind::UniqueViolation, "duplicate key");
        assert_eq!(unique.code, ErrorCode::Internal);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("disk on fire at /secret/path");
        let body = serde_json::to_string(&e.problem()).unwrap();
        assert!(!body.contains("secret"));
        assert!(body.contains("\"code\":\"internal\""));
    }

    #[test]
    fn codes_are_unique_snake_case_with_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert_eq!(ErrorCode::parse(text), Some(*code));
        }
    }
}
