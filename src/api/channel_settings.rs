//! `PUT`/`GET /v1/channels` (admin): the channel settings the webhooks
//! work with.

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::AppState;
use crate::error::{ApiError, Problem};
use crate::providers::settings::{ChannelSettingsInput, ChannelSettingsView};
use crate::services::channel_settings;
use crate::store::audit::AuditKind;
use crate::store::channels::settings_of;
use actix_web::middleware::from_fn;
use actix_web::{get, put, web, HttpResponse};

/// Read the channel settings
///
/// The WhatsApp and Twilio settings, secrets shown only as `<name>_set`.
#[utoipa::path(
    tag = "channels",
    responses(
        (status = 200, description = "The channel settings; secrets are null with `<name>_set`", body = ChannelSettingsView),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/channels", wrap = "from_fn(auth::admin)")]
pub async fn get_channels(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id;
    let stored = state
        .db(move |conn| Ok(settings_of(conn, &tenant)?))
        .await?;
    Ok(HttpResponse::Ok().json(stored.view()))
}

/// Replace the channel settings
///
/// Replaces the whole object: WhatsApp and Twilio credentials and numbers,
/// opt-in matches, extra opt-out keywords, the partial opt-out purposes. An
/// omitted secret keeps its stored value.
#[utoipa::path(
    tag = "channels",
    request_body = ChannelSettingsInput,
    responses(
        (status = 200, description = "The settings were replaced; secrets are null with `<name>_set`", body = ChannelSettingsView),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/v1/channels", wrap = "from_fn(auth::admin)")]
pub async fn put_channels(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<ChannelSettingsInput>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.clone();
    let master = state.master.clone();
    let now = state.now();
    let input = body.value;
    let view = state
        .db(move |conn| Ok(channel_settings::replace(conn, &master, &tenant, input, now)?.view()))
        .await?;
    // What the settings became, secrets redacted as in the answer.
    let details = serde_json::to_value(&view).unwrap_or_default();
    caller
        .note(&state, AuditKind::ChannelsChanged, details)
        .await;
    Ok(HttpResponse::Ok().json(view))
}
