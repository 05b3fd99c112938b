//! `POST /webhooks/twilio-voice/{tenant}/{flow}`: the hosted phone opt-in
//! (docs/ivr.md). Twilio posts a call here, signed over the public URL:
//! the first request is answered with TwiML that reads the flow's prompt
//! and gathers one key, posted back here; the flow's key records an `ivr`
//! opt-in for the caller, any other key nothing. Both end with a goodbye.

use super::record;
use super::twilio::{read_form, refused, TWILIO};
use crate::api::AppState;
use crate::domain::ivr::{gather_twiml, goodbye_twiml};
use crate::error::{ApiError, Problem};
use crate::providers::signature::twilio_signature_valid;
use crate::providers::twilio::read_call;
use crate::services::ivr;
use actix_web::{post, web, HttpRequest, HttpResponse};

fn twiml(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// A call to a hosted phone opt-in
///
/// Twilio posts each call of a number the flow is set on, signed over
/// `CONSENT_LEDGER_PUBLIC_URL` and this path; the answer is TwiML.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("flow" = String, Path, description = "The flow's id"),
    ),
    request_body(content = String, description = "Twilio's voice request parameters (with `Digits` once a key was pressed), signed with X-Twilio-Signature", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: the prompt read and one key gathered, or a goodbye", content_type = "text/xml", body = String),
        (status = 401, description = "Bad signature, account or number (also for an unknown tenant or one without Twilio): nothing recorded", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant has no such flow", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/twilio-voice/{tenant}/{flow}")]
pub async fn twilio_call(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (tenant, flow_id) = path.into_inner();
    let (signed, params) = read_form(&state, &request, &tenant, body).await?;
    let twilio = signed
        .settings
        .twilio
        .as_ref()
        .expect("signed with its token");
    // Signed over the public URL of this very path.
    let url = format!(
        "{}/webhooks/twilio-voice/{tenant}/{flow_id}",
        state.settings.public_url.trim_end_matches('/')
    );
    let valid = twilio_signature_valid(&signed.secrets(), &url, &params, Some(&signed.signature));
    signed.verified(&state, &request, &TWILIO, valid).await?;
    let call = read_call(&params, twilio).map_err(refused)?;
    let tenant_id = signed.tenant.id.clone();
    let id = flow_id.clone();
    let flow = state
        .db(move |conn| Ok(ivr::current(conn, &tenant_id, &id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("the tenant has no such flow"))?;
    let language = flow.definition.language.clone();
    if call.digits.is_none() {
        crate::metrics::webhook("twilio_voice", "prompted", 1);
        return Ok(twiml(gather_twiml(&flow.definition, &url)));
    }
    let recorded = record(&state, signed.tenant, move |conn, master, tenant, clock| {
        ivr::record_call(conn, master, tenant, (&flow, &call), clock.now())
    })
    .await?;
    let counted = if recorded.is_some() {
        "recorded"
    } else {
        "ignored"
    };
    tracing::info!(outcome = counted, "Twilio call handled");
    crate::metrics::webhook("twilio_voice", counted, 1);
    Ok(twiml(goodbye_twiml(&language)))
}
