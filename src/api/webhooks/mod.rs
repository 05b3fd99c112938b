//! The WhatsApp Cloud API and Twilio webhooks (docs/webhooks.md):
//! authenticated by the providers' signatures, never by API keys.

pub mod twilio;
pub mod twilio_voice;
pub mod whatsapp;

use crate::api::body::{declared_length, read_body as read_body_within, Body};
use crate::api::limits::client_addr;
use crate::api::AppState;
use crate::domain::access::TenantId;
use crate::domain::time::Clock;
use crate::error::{ApiError, ErrorCode};
use crate::keys::MasterKey;
use crate::providers::settings::{self, StoredSettings};
use crate::services::channel_settings;
use crate::services::error::ServiceError;
use crate::store::audit::AuditKind;
use crate::store::tenants::TenantRow;
use crate::store::DbConn;
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
) -> Result<Option<(TenantRow, StoredSettings)>, ApiError> {
    let Some(tenant) = TenantId::parse(named) else {
        return Ok(None);
    };
    state
        .db(move |conn| Ok(channel_settings::of_tenant(conn, &tenant)?))
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

/// A provider's sealed secrets by name: the current one and, while it
/// rotates, the previous one.
type SealedSecrets<'s> = [(&'static str, Option<&'s String>); 2];

/// How one provider signs its webhook requests.
struct Signing {
    /// The provider's name in the trail and the metrics.
    provider: &'static str,
    /// The header that carries the signature.
    header: &'static str,
    /// What a failed authentication counts as.
    what: &'static str,
    /// The one answer to a missing or bad signature and to an unknown
    /// tenant or one without the provider.
    refusal: fn() -> ApiError,
    /// The provider's sealed secrets (current and previous), when the
    /// tenant has the provider.
    sealed: for<'s> fn(&'s StoredSettings) -> Option<SealedSecrets<'s>>,
}

/// A provider's request: its tenant, settings and opened secrets, the
/// signature presented and the body, not yet checked against each other.
struct Signed {
    tenant: TenantRow,
    settings: StoredSettings,
    secrets: Vec<String>,
    signature: String,
    body: Body,
}

impl Signed {
    /// Reads a signed request. No body is read for an unknown tenant, one
    /// without the provider, or a request without a signature.
    async fn read(
        state: &AppState,
        request: &HttpRequest,
        named: &str,
        payload: web::Payload,
        signing: &Signing,
    ) -> Result<Self, ApiError> {
        may_authenticate(state, request)?;
        let refused = || failed(state, request, signing.what, (signing.refusal)());
        let signature = request
            .headers()
            .get(signing.header)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(refused)?
            .to_owned();
        let (tenant, settings) = tenant_settings(state, named).await?.ok_or_else(refused)?;
        let secrets = {
            let sealed = (signing.sealed)(&settings).ok_or_else(refused)?;
            open_secrets(state, &tenant.id, &sealed)?
        };
        let body = read_body(state, request, payload, BODY_LIMIT).await?;
        Ok(Self {
            tenant,
            settings,
            secrets,
            signature,
            body,
        })
    }

    /// The secrets, as the signature checks take them.
    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    /// Passes a request whose signature `valid` says matched; otherwise
    /// notes the failure in the tenant's trail and refuses it.
    async fn verified(
        &self,
        state: &AppState,
        request: &HttpRequest,
        signing: &Signing,
        valid: bool,
    ) -> Result<(), ApiError> {
        if valid {
            return Ok(());
        }
        signature_failed(state, request, &self.tenant.id, signing.provider).await;
        Err(failed(state, request, signing.what, (signing.refusal)()))
    }
}

/// Webhook bodies are at most 3 MiB (docs/api.md), Twilio's as Meta's.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Runs a verified request's recording in its tenant's write group, with
/// the master key and the clock.
async fn record<T, F>(state: &AppState, tenant: TenantRow, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &MasterKey, &TenantRow, &Clock) -> Result<T, ServiceError>
        + Send
        + 'static,
{
    let master = state.master.clone();
    let clock = state.clock.clone();
    let log = tenant.id.clone();
    state
        .write(&log, move |conn| {
            work(conn, &master, &tenant, &clock).map_err(ApiError::from)
        })
        .await
}
