//! The WhatsApp Cloud API and Twilio webhooks (SPEC section 7):
//! authenticated by the providers' signatures, never by API keys.

pub mod twilio;
pub mod whatsapp;

use crate::api::body::{declared_length, read_body as read_body_within, Body};
use crate::api::limits::client_addr;
use crate::api::AppState;
use crate::domain::access::TenantId;
use crate::error::{ApiError, ErrorCode};
use crate::providers::settings::{self, StoredSettings};
use crate::services::channel_settings;
use crate::store::audit::AuditKind;
use actix_web::{web, HttpRequest};

/// The raw body, at most `limit` bytes (signatures are over the exact
/// bytes), read within the body limits of [`crate::api::body`].
async fn read_body(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Body, ApiError> {
    let declared = declared_length(request);
    read_body_within(state, payload, declared, limit, ErrorCode::MalformedBody).await
}

/// Counts a failed authentication (a verify token or a signature) of the
/// request's address and gives back the refusal.
fn failed(state: &AppState, request: &HttpRequest, what: &str, refusal: ApiError) -> ApiError {
    state
        .guards
        .authentication_failed(client_addr(request), what);
    refusal
}

/// Records in a tenant's trail a signed request whose signature does not
/// match its configured secrets.
async fn signature_failed(
    state: &AppState,
    request: &HttpRequest,
    tenant: &TenantId,
    provider: &str,
) {
    let details = serde_json::json!({
        "provider": provider,
        "client": client_addr(request).map(|c| c.0.to_string()),
    });
    let actor = format!("webhook:{provider}");
    crate::api::trail::note(state, tenant, &actor, AuditKind::SignatureFailed, details).await;
}

/// 429 while the request's address has failed to authenticate too often.
fn may_authenticate(state: &AppState, request: &HttpRequest) -> Result<(), ApiError> {
    state.guards.authentication_allowed(client_addr(request))
}

/// The tenant a webhook's path names, with its channel settings; `None` for
/// an unknown tenant (or a path that is no tenant id), which each webhook
/// answers exactly as a bad signature (tenant ids cannot be listed without
/// credentials).
async fn tenant_settings(
    state: &AppState,
    named: &str,
) -> Result<Option<(TenantId, StoredSettings)>, ApiError> {
    let Some(tenant) = TenantId::parse(named) else {
        return Ok(None);
    };
    state
        .db(move |conn| {
            let settings = channel_settings::of_tenant(conn, &tenant)?;
            Ok(settings.map(|settings| (tenant, settings)))
        })
        .await
}

/// Opens a channel's sealed secrets, skipping unset ones.
fn open_secrets(
    state: &AppState,
    tenant: &TenantId,
    sealed: &[(&str, Option<&String>)],
) -> Result<Vec<String>, ApiError> {
    let kek = state.master.kek();
    let mut secrets = Vec::new();
    for (name, value) in sealed {
        if let Some(value) = value {
            secrets.push(
                settings::open_secret(&kek, tenant, name, value).ok_or_else(|| {
                    ApiError::internal(format!("{name} does not open with this master key"))
                })?,
            );
        }
    }
    Ok(secrets)
}
