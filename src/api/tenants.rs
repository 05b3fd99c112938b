//! `POST /v1/tenants` (operator) and `GET`/`PATCH /v1/tenant` (admin).

use super::auth::{self, Caller, Operator, Role};
use super::json::ApiJson;
use super::trail;
use super::AppState;
use crate::domain::access::TenantId;
use crate::domain::access::{self, BRAND_NAME_RULE};
use crate::domain::number::Region;
use crate::domain::policy::AmbiguousMode;
use crate::domain::purpose::CaptureChannel;
use crate::domain::time::Timestamp;
use crate::domain::vocabulary::{Language, LanguageSet};
use crate::error::{ApiError, Problem};
use crate::services::tenants::{self as service};
use crate::store::audit::AuditKind;
use crate::store::log::current_signing_key;
use crate::store::tenants::{SettingsChange, TenantRow};
use actix_web::middleware::from_fn;
use actix_web::{get, patch, post, web, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    #[schema(schema_with = crate::domain::openapi::tenant_id)]
    pub id: String,
    /// The first brand (the company name shown to people).
    #[schema(schema_with = crate::domain::openapi::brand_name)]
    pub brand: String,
}

/// A new key, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    #[schema(example = "key_3f9a1c2b4d5e")]
    pub id: String,
    /// `clk_<12 hex>_<43 base64url>`; store it now, it is never shown again.
    pub key: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: String,
    /// The log's origin: `<CONSENT_LEDGER_ORIGIN>/<tenant>`.
    pub log: String,
    /// C2SP signed-note verifier key of the tenant's checkpoints.
    pub verifier_key: String,
    pub admin_key: NewKey,
}

/// A brand name of a request's `field` (422 `invalid_request`).
pub fn check_brand_name(name: &str, field: &str) -> Result<(), ApiError> {
    access::check_brand_name(name)
        .map_err(|code| ApiError::invalid_field(field, code, BRAND_NAME_RULE))
}

/// Create a tenant
///
/// A tenant with its log, its first brand and its first admin key (shown
/// once); tenant ids are never reused.
#[utoipa::path(
    tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Tenant created; the admin key is shown once", body = CreatedTenant),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("operator" = []))
)]
#[post("/v1/tenants", wrap = "from_fn(auth::operator)")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    _operator: Operator,
    body: ApiJson<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.value;
    let id = TenantId::parse(&request.id).ok_or_else(|| {
        ApiError::invalid_field(
            "id",
            "invalid_value",
            "a tenant id is 1 to 64 lowercase letters, digits and inner hyphens",
        )
    })?;
    check_brand_name(&request.brand, "brand")?;
    let brand = request.brand.clone();
    let master = state.master.clone();
    let signer = state.signer.clone();
    let origin = state.settings.origin.clone();
    let now = state.now().millis();
    let created = state
        .db(move |conn| {
            service::create_tenant(conn, &master, &signer, &origin, &id, &request.brand, now)
                .map_err(ApiError::from)
        })
        .await?;
    tracing::info!(tenant = %created.tenant, key_id = %created.admin_key_id, "tenant created");
    let details = json!({"brand": brand, "admin_key_id": created.admin_key_id});
    trail::note(
        &state,
        &created.tenant,
        "operator",
        AuditKind::TenantCreated,
        details,
    )
    .await;
    // The admin key is shown once: never cached.
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(CreatedTenant {
            tenant: created.tenant.into_string(),
            log: created.log,
            verifier_key: created.verifier_key,
            admin_key: NewKey {
                id: created.admin_key_id,
                key: created.admin_key,
                roles: vec![Role::Admin],
            },
        }))
}

/// A tenant's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSettings {
    pub id: String,
    pub log: String,
    pub verifier_key: String,
    pub created_at: Timestamp,
    /// Entries in the log.
    pub tree_size: u64,
    /// Opt-ins older than this many days answer `expired`.
    pub max_consent_age_days: Option<i64>,
    /// Region (ISO 3166 alpha-2) for national numbers given without one.
    pub default_region: Option<String>,
    /// Capture channels whose opt-ins wait for the person's confirmation
    /// (double opt-in): those recorded through `POST /v1/opt-ins` and the
    /// hosted pages. Opt-ins that a provider's signed webhook delivers from
    /// the identity itself never wait.
    pub require_confirmation_for: Vec<CaptureChannel>,
    pub evidence_retention_days: Option<i64>,
    /// The languages whose opt-out vocabularies read inbound messages
    /// (docs/webhooks.md), in the shipped order; English is always one.
    pub languages: Vec<Language>,
    /// What a message that holds an opt-out keyword among other words, and
    /// no phrase, does: `opt_out` (an opt-out of `partial_opt_out`, listed
    /// in `GET /v1/reviews`) or `review` (nothing until reviewed; checks
    /// answer `under_review`).
    pub ambiguous_messages: AmbiguousMode,
}

impl TenantSettings {
    fn new(t: TenantRow, verifier_key: String) -> Self {
        Self {
            id: t.id.into_string(),
            log: t.origin,
            verifier_key,
            created_at: Timestamp::from_millis(t.created_at),
            tree_size: t.tree_size as u64,
            max_consent_age_days: t.policy.max_consent_age_days,
            default_region: t.policy.default_region,
            require_confirmation_for: t.policy.confirmation_for,
            evidence_retention_days: t.policy.evidence_retention_days,
            languages: t.policy.languages.to_vec(),
            ambiguous_messages: t.policy.ambiguous,
        }
    }
}

/// Read the tenant's settings
///
/// Age limit, default region, double opt-in channels, retention, languages
/// and what ambiguous messages do.
#[utoipa::path(
    tag = "tenants",
    responses(
        (status = 200, description = "The tenant's settings", body = TenantSettings),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/tenant", wrap = "from_fn(auth::admin)")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant;
    let settings = state
        .db(move |conn| {
            let key = current_signing_key(conn, &tenant.id)?;
            Ok(TenantSettings::new(tenant, key.verifier_key))
        })
        .await?;
    Ok(HttpResponse::Ok().json(settings))
}

/// Absent: unchanged; null: cleared.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Fields to change; absent fields stay, null clears.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// Opt-ins older than this many days (1 to 36,500) answer `expired`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 36_500)]
    pub max_consent_age_days: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::domain::openapi::default_region)]
    pub default_region: Option<Option<String>>,
    // Described by `opt_in_channels`: which opt-ins wait, which never do.
    #[serde(default)]
    #[schema(schema_with = crate::domain::openapi::opt_in_channels)]
    pub require_confirmation_for: Option<Vec<CaptureChannel>>,
    /// Days (1 to 36,500) after which a group whose consent has ended is
    /// erased by retention.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 36_500)]
    pub evidence_retention_days: Option<Option<i64>>,
    /// The languages whose opt-out vocabularies are read (English always
    /// is); null: every shipped language.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Language>>)]
    pub languages: Option<Option<Vec<Language>>>,
    #[serde(default)]
    pub ambiguous_messages: Option<AmbiguousMode>,
}

fn check_days(field: &str, value: Option<Option<i64>>) -> Result<(), ApiError> {
    match value {
        Some(Some(days)) if !(1..=36_500).contains(&days) => Err(ApiError::invalid_field(
            field,
            "out_of_range",
            format!("`{field}` is a number of days from 1 to 36500, or null"),
        )),
        _ => Ok(()),
    }
}

/// A PATCH checked and turned into the change it makes, with the names of
/// the settings it changes.
fn parse_patch(patch: TenantPatch) -> Result<(SettingsChange, Vec<&'static str>), ApiError> {
    check_days("max_consent_age_days", patch.max_consent_age_days)?;
    check_days("evidence_retention_days", patch.evidence_retention_days)?;
    let default_region = match patch.default_region {
        Some(Some(region)) => Some(Some(
            Region::parse(&region)
                .map_err(|_| {
                    ApiError::invalid_field(
                        "default_region",
                        "invalid_region",
                        "an ISO 3166 alpha-2 region known to the numbering plan, e.g. DE",
                    )
                })?
                .as_str()
                .to_owned(),
        )),
        other => other,
    };
    let require_confirmation_for = match patch.require_confirmation_for {
        Some(channels) if channels.iter().any(|c| !c.can_capture_opt_in()) => {
            return Err(ApiError::invalid_field(
                "require_confirmation_for",
                "invalid_value",
                "capture channels of opt-ins: sms, web, whatsapp, ivr or paper",
            ));
        }
        Some(mut channels) => {
            channels.sort_by_key(|c| c.as_str());
            channels.dedup();
            Some(serde_json::to_string(&channels).expect("serialisable"))
        }
        None => None,
    };
    let changed: Vec<&str> = [
        ("max_consent_age_days", patch.max_consent_age_days.is_some()),
        ("default_region", default_region.is_some()),
        (
            "require_confirmation_for",
            require_confirmation_for.is_some(),
        ),
        (
            "evidence_retention_days",
            patch.evidence_retention_days.is_some(),
        ),
        ("languages", patch.languages.is_some()),
        ("ambiguous_messages", patch.ambiguous_messages.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let change = SettingsChange {
        max_consent_age_days: patch.max_consent_age_days,
        default_region,
        require_confirmation_for,
        evidence_retention_days: patch.evidence_retention_days,
        languages: patch.languages.map(|listed| {
            listed.map(|listed| {
                let set = LanguageSet::of(&listed);
                serde_json::to_string(&set.to_vec()).expect("serialisable")
            })
        }),
        ambiguous_messages: patch.ambiguous_messages,
    };
    Ok((change, changed))
}

/// Change the tenant's settings
///
/// Fields given change, absent fields stay, null clears.
#[utoipa::path(
    tag = "tenants",
    request_body = TenantPatch,
    responses(
        (status = 200, description = "The tenant's settings after the change", body = TenantSettings),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/v1/tenant", wrap = "from_fn(auth::admin)")]
pub async fn patch_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<TenantPatch>,
) -> Result<HttpResponse, ApiError> {
    let (change, changed) = parse_patch(body.value)?;
    let tenant = caller.tenant.id.clone();
    let settings = state
        .db(move |conn| {
            let (row, verifier_key) = service::update_settings(conn, &tenant, change)?;
            Ok(TenantSettings::new(row, verifier_key))
        })
        .await?;
    tracing::info!(tenant = %settings.id, key_id = %caller.key_id, "tenant settings changed");
    let details = json!({
        "changed": changed,
        "max_consent_age_days": settings.max_consent_age_days,
        "default_region": settings.default_region,
        "require_confirmation_for": settings.require_confirmation_for,
        "evidence_retention_days": settings.evidence_retention_days,
        "languages": settings.languages,
        "ambiguous_messages": settings.ambiguous_messages,
    });
    trail::note(
        &state,
        &caller.tenant.id,
        &caller.key_id,
        AuditKind::SettingsChanged,
        details,
    )
    .await;
    Ok(HttpResponse::Ok().json(settings))
}
