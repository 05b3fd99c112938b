//! `POST /v1/subjects/query` (auditor): a number's consents per purpose,
//! brand and message channel, and its whole history with openings;
//! `POST /v1/subjects/erase` (admin): erasure on request (SPEC section 11).

use super::auth::{self, Caller};
use super::entries::EntryView;
use super::idempotent;
use super::json::ApiJson;
use super::records::{created, Recorded};
use super::AppState;
use crate::domain::decision::{self, Question, Reason, Standing};
use crate::domain::ids::BrandId;
use crate::domain::purpose::{MessageChannel, Purpose};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::erasure::{self, Erased, ErasureRequest, ALREADY_ERASED_BODY};
use crate::store::append::Answer;
use crate::store::audit::AuditKind;
use crate::store::consent::{group_history, identity_state};
use crate::store::subjects::{group_holds_entries, group_members};
use crate::store::suppression::group_suppression;
use crate::store::tenants::list_brands;
use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::number)]
    pub number: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::user_id)]
    pub user_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::region)]
    pub region: Option<String>,
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

/// The consents of the person an identity belongs to (its newest group).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectReport {
    /// The number asked (absent when asked by `user_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The user id asked (absent when asked by `number`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The subject commitment of the identity asked.
    pub subject: String,
    /// The subject commitments of the whole group (every identity linked to
    /// the one asked), oldest first.
    pub group: Vec<String>,
    pub consents: Vec<ConsentStatus>,
    /// Every entry of the group's subjects, oldest first.
    pub history: Vec<EntryView>,
}

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
    let identity = caller.parse_identity(
        asked.number.as_deref(),
        asked.user_id.as_deref(),
        asked.region.as_deref(),
    )?;
    let tenant = caller.tenant.clone();
    let clock = state.clock.clone();
    let master = state.master.clone();
    let report = state
        .db(move |conn| {
            // One snapshot: the consents and the history agree.
            conn.snapshot(|conn| {
                let state = identity_state(conn, &master, &tenant.id, identity.as_str())?;
                // Its newest group only: erased, or holding no entry, it
                // answers as an unknown identity (never an older group).
                let unknown =
                    || ApiError::not_found("this number or user id has no subject in this tenant");
                let found = state.live_subject().ok_or_else(unknown)?;
                let (group_id, subject) = (found.group_id, found.commitment.clone());
                if !group_holds_entries(conn, group_id)? {
                    return Err(unknown());
                }
                let closure = state.closure();
                let group = group_members(conn, group_id)?
                    .into_iter()
                    .map(|m| m.commitment)
                    .collect();
                let events = state.events;
                let suppressed_at =
                    group_suppression(conn, &master, &tenant.id, &state.identities)?;
                let brands = list_brands(conn, &tenant.id)?;
                let now = clock.now();
                let mut consents = Vec::new();
                // Active brands, and retired ones the person opted in to.
                let relevant = brands.iter().filter(|b| {
                    b.retired_at.is_none()
                        || events.iter().any(|e| e.brand_id == Some(BrandId(b.id)))
                });
                for brand in relevant {
                    for purpose in Purpose::ALL {
                        for channel in MessageChannel::ALL {
                            let question = Question {
                                purpose,
                                brand_id: BrandId(brand.id),
                                channel,
                            };
                            let standing = Standing {
                                suppressed_at,
                                closed: closure,
                            };
                            let outcome = decision::decide(
                                &events,
                                question,
                                tenant.max_consent_age_days,
                                standing,
                                now,
                            );
                            consents.push(ConsentStatus {
                                purpose,
                                brand: brand.name.clone(),
                                message_channel: channel,
                                status: outcome.reason,
                                seq: outcome.consent.map(|e| e.seq),
                                captured_at: outcome.consent.map(|e| e.captured_at),
                            });
                        }
                    }
                }
                let history = group_history(conn, &tenant.id, group_id)?
                    .into_iter()
                    .map(EntryView::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                let (number, user_id) = identity.echo();
                Ok(SubjectReport {
                    number,
                    user_id,
                    subject,
                    group,
                    consents,
                    history,
                })
            })
        })
        .await?;
    tracing::info!(tenant = %caller.tenant.id, key_id = %caller.key_id, subject = %report.subject, "subject read with openings");
    let details = serde_json::json!({"via": "subjects/query", "subject": report.subject});
    caller.note(&state, AuditKind::OpeningsRead, details).await;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::number)]
    pub number: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::user_id)]
    pub user_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::region)]
    pub region: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::erase_reason)]
    pub reason: Option<String>,
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

#[utoipa::path(
    tag = "ledger",
    request_body = EraseRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the first answer is replayed for 24 h; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$")),
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
    let identity = caller.parse_identity(
        request.number.as_deref(),
        request.user_id.as_deref(),
        request.region.as_deref(),
    )?;
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
        &state,
        &req,
        &caller,
        "subjects/erase",
        &body.body_sha256,
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
