//! `POST /v1/subjects/query` (auditor): a number's consents per purpose,
//! brand and message channel, and its whole history with openings;
//! `POST /v1/subjects/erase` (admin): erasure on request (docs/privacy.md).

use super::auth::{self, Caller};
use super::entries::EntryView;
use super::idempotent::{self, IdempotencyKeyHeader};
use super::json::ApiJson;
use super::records::{created, Recorded};
use super::AppState;
use crate::domain::decision::Reason;
use crate::domain::person::{echoes_a_person, names_a_person};
use crate::domain::purpose::{MessageChannel, Purpose};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::checking::{self, SubjectConsent};
use crate::services::erasure::{self, Erased, ErasureRequest, ALREADY_ERASED_BODY};
use crate::store::append::Answer;
use crate::store::audit::AuditKind;
use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SubjectQuery {}
}

/// The decision reason for one combination.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentStatus {
    pub purpose: Purpose,
    pub brand: String,
    pub message_channel: MessageChannel,
    pub status: Reason,
    /// The event the status rests on, if any.
    pub seq: Option<u64>,
    pub captured_at: Option<Timestamp>,
}

echoes_a_person! {
    /// The consents of the person an identity belongs to (its newest group).
    #[derive(Debug, Serialize, ToSchema)]
    pub struct SubjectReport {
        /// The subject commitment of the identity asked.
        pub subject: String,
        /// The subject commitments of the whole group (every identity linked to
        /// the one asked), oldest first.
        pub group: Vec<String>,
        pub consents: Vec<ConsentStatus>,
        /// Every entry of the group's subjects, oldest first.
        pub history: Vec<EntryView>,
    }
}

impl From<SubjectConsent> for ConsentStatus {
    fn from(consent: SubjectConsent) -> Self {
        Self {
            purpose: consent.purpose,
            brand: consent.brand,
            message_channel: consent.channel,
            status: consent.reason,
            seq: consent.consent.as_ref().map(|e| e.seq),
            captured_at: consent.consent.as_ref().map(|e| e.captured_at),
        }
    }
}

/// Report a person's consent
///
/// Every purpose, brand and channel's status for a number or user id, and its
/// group's whole history with openings.
#[utoipa::path(
    tag = "ledger",
    request_body = SubjectQuery,
    responses(
        (status = 200, description = "The number's consents and history", body = SubjectReport),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/subjects/query", wrap = "from_fn(auth::auditor)")]
pub async fn query_subject(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<SubjectQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked = &body.value;
    let identity = asked.identity(caller.tenant.policy.default_region())?;
    let tenant = caller.tenant.clone();
    let clock = state.clock.clone();
    let master = state.master.clone();
    let report = state
        .db(move |conn| {
            let found = checking::report_subject(conn, &master, &tenant, &identity, clock.now())?;
            let history = found
                .history
                .into_iter()
                .map(EntryView::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            let (number, user_id) = identity.echo();
            Ok(SubjectReport {
                number,
                user_id,
                subject: found.subject,
                group: found.group,
                consents: found
                    .consents
                    .into_iter()
                    .map(ConsentStatus::from)
                    .collect(),
                history,
            })
        })
        .await?;
    tracing::info!(tenant = %caller.tenant.id, key_id = %caller.key_id, subject = %report.subject, "subject read with openings");
    let details = serde_json::json!({"via": "subjects/query", "subject": report.subject});
    caller.note(&state, AuditKind::OpeningsRead, details).await;
    Ok(HttpResponse::Ok().json(report))
}

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EraseRequest {
        #[serde(default)]
        #[schema(schema_with = crate::domain::openapi::erase_reason)]
        pub reason: Option<String>,
    }
}

/// The answer to an erasure of an identity whose groups were all erased
/// already.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlreadyErased {
    /// Always true.
    pub erased: bool,
    /// Always false: nothing was recorded.
    pub recorded: bool,
}

/// The longest `reason` an erasure takes.
const MAX_REASON_CHARS: usize = 500;

/// Erase a person
///
/// Erases every group that holds the number or user id: an opt-out of
/// everything, an erasure entry per subject, a suppression record, and the
/// deletion of identities, salts and evidence.
#[utoipa::path(
    tag = "ledger",
    request_body = EraseRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Erased, every group that holds the identity, open or closed: the last `erasure` entry (after an opt-out of everything, unless already); the identity is suppressed", body = Recorded),
        (status = 200, description = "Every group of the identity was already erased: nothing recorded, `{\"erased\":true,\"recorded\":false}`", body = AlreadyErased),
        (status = "4XX", description = "Problem (404: the number has no subject)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/subjects/erase", wrap = "from_fn(auth::admin)")]
pub async fn erase_subject(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<EraseRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.value;
    let identity = request.identity(caller.tenant.policy.default_region())?;
    if let Some(reason) = &request.reason {
        if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                "reason",
                "invalid_value",
                "`reason` is at most 500 characters, without control characters",
            ));
        }
    }
    let clock = state.clock.clone();
    let master = state.master.clone();
    let work_caller = caller.clone();
    idempotent::run(
        idempotent::Request::new(&state, &req, &caller, "subjects/erase", &body.body_sha256),
        move |conn, scope| {
            let answer = scope.map(|scope| Answer {
                scope,
                render: &created,
            });
            let erasure = ErasureRequest {
                tenant: &work_caller.tenant.id,
                collector: &work_caller.key_id,
                identity: &identity,
                reason: request.reason.as_deref(),
            };
            let erased = erasure::erase(conn, &master, &erasure, answer, clock.now())?;
            Ok(match erased {
                Erased::Recorded(appended) => (201, created(&appended)),
                Erased::Already => (200, ALREADY_ERASED_BODY.to_owned()),
            })
        },
    )
    .await
}
