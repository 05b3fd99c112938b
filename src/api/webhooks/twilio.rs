//! `POST /webhooks/twilio/{tenant}`: Twilio's inbound SMS, signed over the
//! configured URL, turned into opt-ins, opt-outs and lifts. Answers an
//! empty TwiML `<Response/>`: never an automatic reply.

use super::{failed, may_authenticate, open_secrets, read_body, signature_failed, tenant_settings};
use crate::api::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::providers::message::Outcome;
use crate::providers::signature::twilio_signature_valid;
use crate::providers::twilio::{read_delivery, Delivery};
use crate::services::inbound;
use actix_web::http::header;
use actix_web::{post, web, HttpRequest, HttpResponse};

/// Webhook bodies are at most 3 MiB (SPEC section 10), Twilio's as Meta's.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

fn twiml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(EMPTY_TWIML)
}

fn is_form(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn refused(detail: &str) -> ApiError {
    tracing::info!(reason = detail, "Twilio request refused");
    ApiError::unauthorized(detail.to_owned())
}

/// A missing or bad signature; an unknown tenant, or one without Twilio,
/// answers the same (tenant ids cannot be listed without credentials).
const BAD_SIGNATURE: &str =
    "X-Twilio-Signature is missing or does not match the configured URL and auth tokens";

#[utoipa::path(
    tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant id")),
    request_body(content = String, description = "Twilio's inbound message parameters, signed with X-Twilio-Signature", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An empty TwiML `<Response/>` (also when ignored)", content_type = "text/xml", body = String),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Bad signature, account or number (also for an unknown tenant or one without Twilio): nothing recorded", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 3 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not form-encoded", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/twilio/{tenant}")]
pub async fn twilio_message(
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    if !is_form(&request) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Twilio posts Content-Type: application/x-www-form-urlencoded",
        ));
    }
    may_authenticate(&state, &request)?;
    let bad_signature = || failed(&state, &request, "twilio signature", refused(BAD_SIGNATURE));
    // No tenant with Twilio or no signature: no body read.
    let signature = request
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(bad_signature)?
        .to_owned();
    let (tenant, settings) = tenant_settings(&state, &tenant)
        .await?
        .filter(|(_, s)| s.twilio.is_some())
        .ok_or_else(bad_signature)?;
    let body = read_body(&state, &request, body, BODY_LIMIT).await?;
    let params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| refused("the body is not a valid form"))?;
    let twilio = settings.twilio.as_ref().expect("filtered on it");
    let tokens = open_secrets(
        &state,
        &tenant,
        &[
            ("twilio.auth_token", Some(&twilio.auth_token)),
            (
                "twilio.secondary_auth_token",
                twilio.secondary_auth_token.as_ref(),
            ),
        ],
    )?;
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if !twilio_signature_valid(&token_refs, &twilio.webhook_url, &params, Some(&signature)) {
        signature_failed(&state, &request, &tenant, "twilio").await;
        return Err(bad_signature());
    }
    let message = match read_delivery(&params, twilio, state.now()).map_err(refused)? {
        Delivery::Message(message) => message,
        Delivery::Ignored(why) => {
            tracing::info!(reason = why, "Twilio request ignored");
            crate::metrics::webhook("twilio", "ignored", 1);
            return Ok(twiml());
        }
    };
    let master = state.master.clone();
    let clock = state.clock.clone();
    let log = tenant.clone();
    let outcome = state
        .write(&log, move |conn| {
            inbound::record_message(conn, &master, &tenant, &settings, &message, clock.now())
                .map_err(ApiError::from)
        })
        .await?;
    tracing::info!(outcome = ?outcome, "Twilio message handled");
    let counted = match outcome {
        Outcome::Recorded { .. } => "recorded",
        Outcome::Duplicate => "deduplicated",
        Outcome::DeadLetter { .. } => "dead_lettered",
    };
    crate::metrics::webhook("twilio", counted, 1);
    Ok(twiml())
}
