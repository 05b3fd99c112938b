//! `POST /webhooks/twilio/{tenant}`: Twilio's inbound SMS, signed over the
//! configured URL, turned into opt-ins, opt-outs and lifts. Answers an
//! empty TwiML `<Response/>`: never an automatic reply.

use super::{record, Signed, Signing};
use crate::api::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::providers::message::Outcome;
use crate::providers::signature::twilio_signature_valid;
use crate::providers::twilio::{read_delivery, Delivery};
use crate::services::inbound;
use actix_web::http::header;
use actix_web::{post, web, HttpRequest, HttpResponse};

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

pub(super) fn refused(detail: &str) -> ApiError {
    tracing::info!(reason = detail, "Twilio request refused");
    ApiError::unauthorized(detail.to_owned())
}

/// A missing or bad signature; an unknown tenant, or one without Twilio,
/// answers the same (tenant ids cannot be listed without credentials).
const BAD_SIGNATURE: &str =
    "X-Twilio-Signature is missing or does not match the configured URL and auth tokens";

/// Twilio signs with the account's auth token (or its secondary one).
pub(super) const TWILIO: Signing = Signing {
    provider: "twilio",
    header: "x-twilio-signature",
    what: "twilio signature",
    refusal: || refused(BAD_SIGNATURE),
    sealed: |settings| {
        let twilio = settings.twilio.as_ref()?;
        Some([
            ("twilio.auth_token", Some(&twilio.auth_token)),
            (
                "twilio.secondary_auth_token",
                twilio.secondary_auth_token.as_ref(),
            ),
        ])
    },
};

/// A request Twilio posts (SMS or voice), read with the tenant's settings
/// and parameters before its signature is checked: form-encoded (else 415).
pub(super) async fn read_form(
    state: &AppState,
    request: &HttpRequest,
    tenant: &str,
    body: web::Payload,
) -> Result<(Signed, Vec<(String, String)>), ApiError> {
    if !is_form(request) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Twilio posts Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let signed = Signed::read(state, request, tenant, body, &TWILIO).await?;
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&signed.body)
        .map_err(|_| refused("the body is not a valid form"))?;
    Ok((signed, params))
}

/// Twilio's inbound SMS
///
/// Twilio posts each message here, signed over the configured URL; it records
/// opt-ins, opt-outs and lifts and answers an empty TwiML response.
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
    let (signed, params) = read_form(&state, &request, &tenant, body).await?;
    let twilio = signed
        .settings
        .twilio
        .as_ref()
        .expect("signed with its token");
    let valid = twilio_signature_valid(
        &signed.secrets(),
        &twilio.webhook_url,
        &params,
        Some(&signed.signature),
    );
    signed.verified(&state, &request, &TWILIO, valid).await?;
    let message = match read_delivery(&params, twilio, state.now()).map_err(refused)? {
        Delivery::Message(message) => message,
        Delivery::Ignored(why) => {
            tracing::info!(reason = why, "Twilio request ignored");
            crate::metrics::webhook("twilio", "ignored", 1);
            return Ok(twiml());
        }
    };
    let Signed {
        tenant, settings, ..
    } = signed;
    let outcome = record(&state, tenant, move |conn, master, tenant, clock| {
        inbound::record_message(conn, master, tenant, &settings, &message, clock.now())
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
