//! The problems a request can meet (docs/api.md), as one table: each
//! stable code with its HTTP status, title and meaning, and a refusal the
//! domain's parsers return. `error.rs` renders them as problem+json.

use super::evidence::FieldError;
use std::fmt;

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

            /// The HTTP status the code answers with.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
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
    FormExists = ("form_exists", 409, "Form exists", "The tenant already has a form with this id; `PUT /v1/forms/{id}` gives it a new version."),
    BrandExists = ("brand_exists", 409, "Brand exists", "The tenant already has a brand with this name (compared case-insensitively)."),
    LastAdminKey = ("last_admin_key", 409, "Last admin key", "Revoking this key would leave the tenant without an active admin key, or without one that does not expire."),
    IdempotencyInProgress = ("idempotency_in_progress", 409, "Request in progress", "A request with this Idempotency-Key is still being processed; retry later."),
    EndpointLimit = ("endpoint_limit", 409, "Endpoint limit", "The tenant has 10 event endpoints, as many as it may; delete one before adding another."),
    DeliveryNotFailed = ("delivery_not_failed", 409, "Delivery not failed", "Only a failed delivery is retried by request; a pending one is retried by itself, a delivered one is done."),
    EntryPointExists = ("entry_point_exists", 409, "Entry point exists", "The tenant already has a campaign entry point with this id; entry points are kept as they were printed."),
    ReviewSettled = ("review_settled", 409, "Review settled", "This review item was settled already: a settlement is final. `GET /v1/reviews` lists the items still waiting."),
    RequestTimeout = ("request_timeout", 408, "Request timeout", "The body did not arrive within the time limit (`CONSENT_LEDGER_BODY_TIMEOUT`, default 15 s); nothing was recorded and the connection is closed."),
    PayloadTooLarge = ("payload_too_large", 413, "Payload too large", "The body exceeds the limit of this endpoint (JSON 1 MiB, batch 4 MiB, webhooks 3 MiB)."),
    UnsupportedMediaType = ("unsupported_media_type", 415, "Unsupported media type", "JSON endpoints take `Content-Type: application/json`; `POST /v1/documents` takes a PDF, JPEG or PNG, told by its content."),
    InvalidRequest = ("invalid_request", 422, "Invalid request", "One or more fields are missing, unknown or invalid; `errors` names each field."),
    InvalidNumber = ("invalid_number", 422, "Invalid phone number", "The number does not parse; `errors[].code` gives the reason: not_a_number, missing_region, invalid_country_code, too_short, too_long, not_valid_number or invalid_region."),
    InvalidUserId = ("invalid_user_id", 422, "Invalid user id", "The `user_id` is not a WhatsApp business-scoped user id: two capital letters, a dot, an optional `ENT.` and 1 to 128 letters or digits."),
    InvalidEvidence = ("invalid_evidence", 422, "Invalid evidence", "The evidence object does not fit its capture channel's row; `errors` names each key."),
    UnknownBrand = ("unknown_brand", 422, "Unknown brand", "The brand or company name is not a brand of this tenant."),
    BrandRetired = ("brand_retired", 422, "Brand retired", "The brand is retired: it takes no new opt-ins."),
    BrandRequired = ("brand_required", 422, "Brand required", "The tenant has more than one active brand (or none), so the check must name one."),
    CompanyNameNotInText = ("company_name_not_in_text", 422, "Company name not in consent text", "The consent text must contain `company_name_shown` as a whole word (compared after NFC and case folding)."),
    CapturedAtInFuture = ("captured_at_in_future", 422, "Captured in the future", "`captured_at` is more than 60 seconds after the server's clock (the tolerance for clock skew)."),
    Suppressed = ("suppressed", 422, "Number erased", "The number was erased on request after this opt-in's `captured_at`; opt-ins captured before an erasure never count again (docs/privacy.md)."),
    CapturedAtTooOld = ("captured_at_too_old", 422, "Captured too long ago", "`captured_at` is older than 30 days; an admin key may import it with `backfill: true`."),
    ReceivedAtInFuture = ("received_at_in_future", 422, "Received in the future", "An interaction's `received_at` is after the server's clock; there is no tolerance: omit it to mean now."),
    ReceivedAtTooOld = ("received_at_too_old", 422, "Received too long ago", "An interaction's `received_at` is more than 24 hours ago: that message opens no window any more."),
    UnknownDocument = ("unknown_document", 422, "Unknown document", "The paper evidence names a `document_id` that was never uploaded."),
    MalformedLine = ("malformed_line", 422, "Malformed line", "A line of an import is not a JSON object (NDJSON), has another number of fields than the header (CSV), or is longer than 1 MiB; `GET /v1/imports/{id}` names the line."),
    TruncatedLine = ("truncated_line", 422, "Truncated line", "The import's file ends inside its last line (no line break, and what is there does not parse): the file was cut short. Send it whole again with the same id."),
    InvalidEncoding = ("invalid_encoding", 422, "Invalid encoding", "A line of an import is not UTF-8; save the file as UTF-8 and send it again."),
    ImportRefused = ("import_refused", 422, "Import refused", "In `all_or_nothing` mode a line of the import was refused, so nothing was recorded; `errors` names each refused line (`line <n>`) with its problem code, and `GET /v1/imports/{id}` lists them with details."),
    ImportRunning = ("import_running", 409, "Import running", "An import with this id is being recorded; `GET /v1/imports/{id}` shows its progress. Send it again once it is done (nothing is recorded twice)."),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "Idempotency key reused", "The Idempotency-Key was used with a different body on this route within 24 hours."),
    InvalidIdempotencyKey = ("invalid_idempotency_key", 422, "Invalid idempotency key", "An Idempotency-Key is 1 to 255 visible ASCII characters."),
    RateLimited = ("rate_limited", 429, "Too many requests", "Too many requests from this address or with this key, too many failed authentications from this address, too many connections from this address, or too many exports at once; retry after the seconds in `Retry-After`."),
    Internal = ("internal", 500, "Internal error", "Something failed on our side; the cause is in the service's log."),
    SigningRefused = ("signing_refused", 503, "Signing refused", "The database is not a consistent extension of the tree this instance signed before (restored from an older copy, or forked); nothing is signed until the missing entries are re-appended from a verified export."),
    NotReady = ("not_ready", 503, "Not ready", "The service cannot reach its database, or lost its connection during the request (a write may then have committed: retry with the same Idempotency-Key). `Retry-After` says when to try again."),
    Overloaded = ("overloaded", 503, "Overloaded", "The service holds as many request bodies and documents being sent as its memory for them allows (`CONSENT_LEDGER_BODY_MEMORY_MIB`); retry after the seconds in `Retry-After`."),
    Busy = ("busy", 503, "Busy", "The database stayed locked by other writers for 10 seconds, or a statement ran longer than 30 seconds; the request's transaction was rolled back. Retry after the seconds in `Retry-After`, with the same Idempotency-Key."),
    InsufficientStorage = ("insufficient_storage", 507, "Insufficient storage", "The disk that keeps the log (the data directory, or the PostgreSQL server's) is full or read-only; nothing of this request was kept. Checks and reads still answer; writes resume by themselves once there is room again. Retry after the seconds in `Retry-After`, with the same Idempotency-Key."),
    DocumentQuotaExceeded = ("document_quota_exceeded", 507, "Document quota exceeded", "Keeping this document would take the tenant's documents past their storage quota (`CONSENT_LEDGER_DOCUMENT_QUOTA_MIB`, default 1024 MiB); nothing was kept. Documents that no entry names are deleted a day after their upload; erasure deletes a person's."),
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

/// A request refused by a rule: the problem's code, what is wrong, and the
/// fields at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl Invalid {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A refusal of `code` naming one field and its field code.
    pub fn field(
        code: ErrorCode,
        field: &str,
        field_code: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            errors: vec![FieldError::new(field, field_code)],
            ..Self::new(code, detail)
        }
    }

    /// 422 `invalid_request` naming one field.
    pub fn request_field(field: &str, field_code: &'static str, detail: impl Into<String>) -> Self {
        Self::field(ErrorCode::InvalidRequest, field, field_code, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_with_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!((400..600).contains(&code.status()));
            assert_eq!(ErrorCode::parse(text), Some(*code));
        }
    }
}
