//! Recording (docs/recording.md): `POST /v1/opt-ins`, `/v1/opt-outs` (collector)
//! and `/v1/interactions` (collector or sender). Each request is parsed
//! once into what the store appends (`domain/request.rs`).

use super::auth::{self, Caller, Role};
use super::idempotent::{self, IdempotencyKeyHeader};
use super::json::ApiJson;
use super::AppState;
use crate::domain::decision::Window;
use crate::domain::identity::Identity;
use crate::domain::request::{
    self, InteractionRecorded, InteractionRequest, OptInRequest, OptOutRequest,
};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::interactions::{self, record_interaction};
use crate::services::opt_outs::{self, record_opt_out, OptedOut};
use crate::services::recording::{record_opt_in, Door, IssuedCode, Reply};
use crate::store::append::Appended;
use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a recorded entry answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    pub seq: u64,
    pub leaf_hash: String,
    /// The subject commitment (a pseudonym of the number within this tenant).
    pub subject: String,
    pub recorded_at: Timestamp,
    /// For an opt-in that waits for confirmation (the tenant's
    /// `require_confirmation_for` lists its capture channel): what the
    /// person sends back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmationView>,
}

/// How a person confirms an opt-in (docs/pages.md).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfirmationView {
    /// Sent back from the number (or user id) that opted in, by WhatsApp
    /// or SMS, within 24 hours: `CONFIRM <code>`.
    #[schema(example = "K7Q2MX")]
    pub code: String,
    pub expires_at: Timestamp,
    /// Opens WhatsApp with the phrase typed in; null when the tenant has no
    /// WhatsApp number configured.
    #[schema(example = "https://wa.me/4930123456?text=CONFIRM%20K7Q2MX")]
    pub whatsapp_link: Option<String>,
}

impl From<&Appended> for Recorded {
    fn from(a: &Appended) -> Self {
        Self {
            seq: a.seq,
            leaf_hash: hex::encode(a.leaf_hash),
            subject: a.subject.clone(),
            recorded_at: a.recorded_at,
            confirmation: None,
        }
    }
}

/// What the rules need to know of the caller.
fn rules_of(caller: &Caller) -> request::Requester<'_> {
    request::Requester {
        default_region: caller.tenant.policy.default_region(),
        may_backfill: caller.has(Role::Admin),
    }
}

pub(super) fn created(appended: &Appended) -> String {
    serde_json::to_string(&Recorded::from(appended)).expect("serialisable")
}

/// What an opt-out of an erased number without a newer subject answers:
/// nothing was recorded, and the number stays opted out (docs/recording.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressedAnswer {
    /// Always `true`.
    pub suppressed: bool,
}

/// Record an opt-in
///
/// Appends an opt-in with its consent text, brand, purposes, channels and
/// evidence; answers the entry (and a confirmation code when the tenant asks
/// for double opt-in).
#[utoipa::path(
    tag = "recording",
    request_body = OptInRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Recorded in the ledger", body = Recorded),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/opt-ins", wrap = "from_fn(auth::collector)")]
pub async fn create_opt_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<OptInRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = body.value.parse(rules_of(&caller))?;
    idempotent::run_grouped(
        idempotent::Request::new(&state, &req, &caller, "opt-ins", &body.body_sha256),
        move |conn, w| {
            // Clock rules run after the idempotency lookup: a retry replays.
            let render =
                |appended: &Appended, code: Option<&IssuedCode>| recorded_json(appended, code);
            let reply = w.scope.map(|scope| Reply {
                scope,
                render: &render,
            });
            let door = Door::Api {
                key_id: &w.caller.key_id,
            };
            let tenant = &w.caller.tenant;
            let recorded = record_opt_in(conn, w.master, tenant, (draft, door), reply, w.now)?;
            let body = recorded_json(&recorded.appended, recorded.confirmation.as_ref());
            Ok((201, body))
        },
    )
    .await
}

/// The 201 answer to an opt-in: what was appended, and the code when it
/// waits for confirmation.
fn recorded_json(appended: &Appended, code: Option<&IssuedCode>) -> String {
    let mut answer = Recorded::from(appended);
    answer.confirmation = code.map(|c| ConfirmationView {
        code: c.code.clone(),
        expires_at: c.expires_at,
        whatsapp_link: c.whatsapp_link.clone(),
    });
    serde_json::to_string(&answer).expect("serialisable")
}

/// Record an opt-out
///
/// Appends an opt-out of purposes and channels for every brand; it counts
/// from the next request.
#[utoipa::path(
    tag = "recording",
    request_body = OptOutRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Recorded in the ledger; counts from the next request", body = Recorded),
        (status = 200, description = "The number was erased and has no newer subject: nothing recorded, it stays opted out", body = SuppressedAnswer),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/opt-outs", wrap = "from_fn(auth::collector)")]
pub async fn create_opt_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<OptOutRequest>,
) -> Result<HttpResponse, ApiError> {
    let opt_out = body.value.parse(rules_of(&caller))?;
    idempotent::run_grouped(
        idempotent::Request::new(&state, &req, &caller, "opt-outs", &body.body_sha256),
        move |conn, w| {
            let suppressed = serde_json::to_string(&SuppressedAnswer { suppressed: true })
                .expect("serialisable");
            let reply = w.scope.map(|scope| opt_outs::Reply {
                scope,
                render: &created,
                suppressed: &suppressed,
            });
            let by = (
                &w.caller.tenant.id,
                Door::Api {
                    key_id: &w.caller.key_id,
                },
            );
            match record_opt_out(conn, w.master, by, opt_out, reply, w.now)? {
                OptedOut::Recorded(appended) => Ok((201, created(&appended))),
                OptedOut::Suppressed => Ok((200, suppressed)),
            }
        },
    )
    .await
}

/// What an interaction's idempotent answer keeps: the window, never the
/// number (a replay takes the number from its own, identical, request).
#[derive(Debug, Serialize, Deserialize)]
struct StoredInteraction {
    window: Window,
}

/// The answer to an interaction, from what was stored and the identity
/// asked (echoed as `number` or `user_id`).
fn interaction_answer(identity: &Identity, stored: &str) -> Option<String> {
    let stored: StoredInteraction = serde_json::from_str(stored).ok()?;
    let (number, user_id) = identity.echo();
    serde_json::to_string(&InteractionRecorded {
        number,
        user_id,
        window: stored.window,
    })
    .ok()
}

/// Record an inbound message
///
/// Opens the 24-hour customer-service window of the person's message (an SMS
/// opens none).
#[utoipa::path(
    tag = "recording",
    request_body = InteractionRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The customer-service window after this message", body = InteractionRecorded),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/interactions", wrap = "from_fn(auth::collector_or_sender)")]
pub async fn create_interaction(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: ApiJson<InteractionRequest>,
) -> Result<HttpResponse, ApiError> {
    let interaction = body.value.parse(rules_of(&caller))?;
    let asked = interaction.identity.clone();
    // A replay answers the stored window with the number of this request
    // (the same body, so the same number).
    let replay = move |stored: String| interaction_answer(&asked, &stored).unwrap_or(stored);
    idempotent::run_grouped_with_replay(
        idempotent::Request::new(&state, &req, &caller, "interactions", &body.body_sha256),
        replay,
        {
            move |conn, w| {
                let render = |window: &Window| {
                    let stored = StoredInteraction {
                        window: window.clone(),
                    };
                    serde_json::to_string(&stored).expect("serialisable")
                };
                let reply = w.scope.map(|scope| interactions::Reply {
                    scope,
                    render: &render,
                });
                let tenant = &w.caller.tenant.id;
                let window =
                    record_interaction(conn, w.master, tenant, &interaction, reply, w.now)?;
                let stored = render(&window);
                let body = interaction_answer(&interaction.identity, &stored)
                    .expect("it was just written");
                Ok((200, body))
            }
        },
    )
    .await
}
