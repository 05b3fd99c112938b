//! `PUT`/`GET /v1/channels` (admin): the channel settings the webhooks
//! work with.

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::AppState;
use crate::channels::settings::TWILIO_NUMBER;
use crate::channels::settings::{
    apply_input, BrandLookup, ChannelSettingsInput, ChannelSettingsView,
};
use crate::domain::evidence::FieldError;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::store::audit::AuditKind;
use crate::store::channels as store;
use crate::store::connection::lock_log;
use crate::store::tenants::find_brand;
use actix_web::middleware::from_fn;
use actix_web::{get, put, web, HttpResponse};

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
        .db(move |conn| Ok(store::settings_of(conn, &tenant)?))
        .await?;
    Ok(HttpResponse::Ok().json(stored.view()))
}

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
    let tenant = caller.tenant.id.clone();
    let master = state.master.clone();
    let now = state.now();
    let input = body.value;
    let view = state
        .db(move |conn| {
            // Brands are read first; a brand retired meanwhile only stops
            // the match from recording (the webhook checks again).
            let mut lookups = Vec::new();
            let names = input
                .whatsapp
                .iter()
                .flat_map(|w| w.opt_in.iter())
                .chain(input.twilio.iter().flat_map(|t| t.opt_in.iter()))
                .map(|m| m.brand.clone())
                .collect::<Vec<_>>();
            for name in names {
                let found = find_brand(conn, &tenant, &name)?;
                let lookup = match found {
                    Some(b) if b.retired_at.is_none() => BrandLookup::Active(b.name),
                    Some(_) => BrandLookup::Retired,
                    None => BrandLookup::Unknown,
                };
                lookups.push((name, lookup));
            }
            let brand = |name: &str| {
                lookups
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(BrandLookup::Unknown, |(_, l)| l.clone())
            };
            let kek = master.kek();
            conn.immediate_transaction(|conn| {
                lock_log(conn, &tenant)?;
                // The secrets a PUT omits are kept from the settings as they
                // stand under the lock: a concurrent PUT's new secret is
                // never replaced by the one it replaced.
                let previous = store::settings_of(conn, &tenant)?;
                let stored = apply_input(input, Some(&previous), &kek, &tenant, &brand).map_err(
                    |errors| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            "the channel settings are not valid; `errors` names each field",
                        )
                        .with_errors(errors)
                    },
                )?;
                let json = serde_json::to_string(&stored).map_err(ApiError::internal)?;
                let taken =
                    store::replace_settings(conn, &tenant, &json, &stored.numbers(), now.millis())?;
                if let Some(number) = taken {
                    let field = if number.kind == TWILIO_NUMBER {
                        "twilio.numbers"
                    } else {
                        "whatsapp.phone_numbers"
                    };
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        "a business number is already used by another tenant",
                    )
                    .with_errors(vec![FieldError::new(field, "number_taken")]));
                }
                // Opt-outs kept while a number was not configured apply now.
                let applied = crate::services::dead_letters::apply_letters_for_business(
                    conn, &master, &tenant, &stored, now,
                )?;
                tracing::info!(
                    kept_opt_outs_applied = applied.len(),
                    "channel settings replaced"
                );
                Ok(stored.view())
            })
        })
        .await?;
    // What the settings became, secrets redacted as in the answer.
    let details = serde_json::to_value(&view).unwrap_or_default();
    caller
        .note(&state, AuditKind::ChannelsChanged, details)
        .await;
    Ok(HttpResponse::Ok().json(view))
}
