//! The WhatsApp Cloud API and Twilio webhooks (SPEC section 7):
//! authenticated by the providers' signatures, never by API keys.

pub mod twilio;
pub mod whatsapp;

use crate::api::AppState;
use crate::channels::settings::{self, StoredSettings};
use crate::error::{ApiError, ErrorCode};
use actix_web::web;
use futures_util::StreamExt;

/// The raw body, at most `limit` bytes (signatures are over the exact bytes).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body exceeds this endpoint's limit of {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A tenant's channel settings; `None` for an unknown tenant, which each
/// webhook answers exactly as a bad signature (tenant ids cannot be listed
/// without credentials).
async fn tenant_settings(
    state: &AppState,
    tenant: &str,
) -> Result<Option<StoredSettings>, ApiError> {
    let tenant = tenant.to_owned();
    state
        .db(move |conn| {
            if crate::store::tenants::find_tenant(conn, &tenant)?.is_none() {
                return Ok(None);
            }
            Ok(Some(crate::store::channels::settings_of(conn, &tenant)?))
        })
        .await
}

/// Opens a channel's sealed secrets, skipping unset ones.
fn open_secrets(
    state: &AppState,
    tenant: &str,
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
