//! `GET`/`POST /webhooks/whatsapp/{tenant}`: Meta's handshake, then signed
//! notifications turned into windows, opt-ins, opt-outs and lifts.

use super::{failed, may_authenticate, record, tenant_settings, Signed, Signing};
use crate::api::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::providers::settings::{open_secret, StoredSettings, StoredWhatsApp};
use crate::providers::signature::whatsapp_signature_valid;
use crate::providers::whatsapp_payload::Notification;
use crate::services::notification::record_notification;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// The refusal of a handshake: a wrong verify token, an unknown tenant or
/// one without WhatsApp all answer the same.
fn handshake_refused() -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        "hub.mode must be subscribe and hub.verify_token must match the configured token",
    )
}

/// The refusal of a notification: a missing or bad signature, an unknown
/// tenant or one without WhatsApp all answer the same.
fn signature_refused() -> ApiError {
    ApiError::unauthorized("X-Hub-Signature-256 is missing or does not match the app secret")
}

/// Meta signs with the app secret (or the previous one, while it rotates).
const WHATSAPP: Signing = Signing {
    provider: "whatsapp",
    header: "x-hub-signature-256",
    what: "whatsapp signature",
    refusal: signature_refused,
    sealed: |settings| {
        let whatsapp = whatsapp_of(settings)?;
        Some([
            ("whatsapp.app_secret", Some(&whatsapp.app_secret)),
            (
                "whatsapp.previous_app_secret",
                whatsapp.previous_app_secret.as_ref(),
            ),
        ])
    },
};

/// The tenant's WhatsApp settings, when it has them.
fn whatsapp_of(settings: &StoredSettings) -> Option<&StoredWhatsApp> {
    settings.whatsapp.as_ref()
}

/// WhatsApp's subscription handshake
///
/// Meta checks the verify token when the webhook is configured.
#[utoipa::path(
    tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant id"), Handshake),
    responses(
        (status = 200, description = "`hub.challenge`, echoed", content_type = "text/plain", body = String),
        (status = 403, description = "The verify token does not match (also for an unknown tenant or one without WhatsApp)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The query string is not valid", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/webhooks/whatsapp/{tenant}")]
pub async fn whatsapp_handshake(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: web::Query<Handshake>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    may_authenticate(&state, &request)?;
    let refused = || {
        failed(
            &state,
            &request,
            "whatsapp verify token",
            handshake_refused(),
        )
    };
    let (tenant, settings) = tenant_settings(&state, &tenant)
        .await?
        .ok_or_else(refused)?;
    let whatsapp = whatsapp_of(&settings).ok_or_else(refused)?;
    let expected = open_secret(
        &state.master.kek(),
        &tenant.id,
        "whatsapp.verify_token",
        &whatsapp.verify_token,
    )
    .ok_or_else(|| ApiError::internal("the verify token does not open with this master key"))?;
    let presented = query.verify_token.as_deref().unwrap_or("");
    let matches = bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
    let challenge = query.challenge.as_deref().unwrap_or("");
    let challenge_ok = challenge.len() <= 256 && challenge.bytes().all(|b| b.is_ascii_graphic());
    if query.mode.as_deref() != Some("subscribe") || !matches || !challenge_ok {
        return Err(refused());
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(challenge.to_owned()))
}

/// WhatsApp's notifications
///
/// Meta posts messages, statuses and preference changes here, signed with the
/// app secret; they record windows, opt-ins, opt-outs and lifts.
#[utoipa::path(
    tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant id")),
    request_body(content = String, description = "Meta's notification, signed with X-Hub-Signature-256", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (also when ignored)"),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad signature (also for an unknown tenant or one without WhatsApp): nothing recorded", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 3 MiB", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/whatsapp/{tenant}")]
pub async fn whatsapp_notification(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    let signed = Signed::read(&state, &request, &tenant, body, &WHATSAPP).await?;
    let valid = whatsapp_signature_valid(&signed.secrets(), &signed.body, Some(&signed.signature));
    signed.verified(&state, &request, &WHATSAPP, valid).await?;
    let notification: Notification = match serde_json::from_slice(&signed.body) {
        Ok(n) => n,
        Err(_) => {
            tracing::warn!("a signed WhatsApp notification is not JSON; ignored");
            return Ok(HttpResponse::Ok().finish());
        }
    };
    let Signed {
        tenant, settings, ..
    } = signed;
    let applied = record(&state, tenant, move |conn, master, tenant, clock| {
        record_notification(conn, master, tenant, &settings, &notification, clock)
    })
    .await?;
    tracing::info!(?applied, "WhatsApp notification handled");
    for (outcome, count) in applied.by_outcome() {
        crate::metrics::webhook("whatsapp", outcome, count);
    }
    Ok(HttpResponse::Ok().finish())
}
