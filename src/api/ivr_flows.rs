//! `PUT /v1/ivr-flows/{flow}` (admin): a hosted phone opt-in flow
//! (docs/ivr.md). A changed definition makes a new version; every version
//! stays, and each opt-in names the version its caller heard.

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::AppState;
use crate::domain::ivr::{IvrFlow, IvrFlowInput};
use crate::error::{ApiError, Problem};
use crate::services::ivr;
use crate::store::audit::AuditKind;
use actix_web::middleware::from_fn;
use actix_web::{put, web, HttpResponse};
use serde_json::json;

/// Save a phone flow
///
/// The prompt a caller hears, the key that opts in, and what it opts in
/// to; Twilio is told to post the number's calls to its `webhook_url`.
#[utoipa::path(
    tag = "channels",
    params(("flow" = String, Path, description = "The flow's id: 1 to 64 lowercase letters, digits, `-` or `_`")),
    request_body = IvrFlowInput,
    responses(
        (status = 201, description = "A new version (the first, or a changed definition)", body = IvrFlow),
        (status = 200, description = "The definition is the current version's: nothing changed", body = IvrFlow),
        (status = "4XX", description = "Problem (422: a prompt that does not name the brand, an unknown or retired brand, a bad digit or language)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/v1/ivr-flows/{flow}", wrap = "from_fn(auth::admin)")]
pub async fn put_flow(
    state: web::Data<AppState>,
    caller: Caller,
    flow: web::Path<String>,
    body: ApiJson<IvrFlowInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, input) = (flow.into_inner(), body.value);
    let tenant = caller.tenant.id.clone();
    let now = state.now();
    let (flow, created) = state
        .db(move |conn| Ok(ivr::save(conn, &tenant, (&id, input), now)?))
        .await?;
    let url = format!(
        "{}/webhooks/twilio-voice/{}/{}",
        state.settings.public_url.trim_end_matches('/'),
        caller.tenant.id,
        flow.id
    );
    let view = IvrFlow::new(flow.id, flow.version, flow.definition, url);
    if !created {
        return Ok(HttpResponse::Ok().json(view));
    }
    let details = json!({"flow": view.id, "version": view.version});
    caller.note(&state, AuditKind::IvrFlowSaved, details).await;
    Ok(HttpResponse::Created().json(view))
}
