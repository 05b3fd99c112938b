//! `GET`/`POST /v1/keys`, `DELETE /v1/keys/{id}` (admin). A key is shown
//! once; only its SHA-256 is stored.

use super::auth::{self, Caller, Role};
use super::json::ApiJson;
use super::tenants::NewKey;
use super::AppState;
use crate::domain::access::normalised_roles;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::keys::{self, NewApiKey};
use crate::store::audit::AuditKind;
use crate::store::tenants::{list_api_keys, ApiKeyRow};
use actix_web::middleware::from_fn;
use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[schema(schema_with = crate::domain::openapi::key_name)]
    pub name: String,
    /// At least one; repeats count once.
    #[schema(example = json!(["sender"]), min_items = 1)]
    pub roles: Vec<Role>,
    /// When the key stops working; in the future (else 422).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// Approximate: updated at most once a minute.
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl From<ApiKeyRow> for KeyInfo {
    fn from(k: ApiKeyRow) -> Self {
        Self {
            roles: k
                .role_names()
                .iter()
                .filter_map(|r| Role::parse(r))
                .collect(),
            id: k.id,
            name: k.name,
            created_at: Timestamp::from_millis(k.created_at),
            expires_at: k.expires_at.map(Timestamp::from_millis),
            last_used_at: k.last_used_at.map(Timestamp::from_millis),
            revoked_at: k.revoked_at.map(Timestamp::from_millis),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// List API keys
///
/// The tenant's keys with their roles, expiry and last use; never the secret.
#[utoipa::path(
    tag = "keys",
    responses(
        (status = 200, description = "The tenant's keys (never the keys themselves)", body = KeyList),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/keys", wrap = "from_fn(auth::admin)")]
pub async fn list_keys(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id;
    let rows = state
        .db(move |conn| Ok(list_api_keys(conn, &tenant)?))
        .await?;
    Ok(HttpResponse::Ok().json(KeyList {
        keys: rows.into_iter().map(KeyInfo::from).collect(),
    }))
}

/// The roles of a new key, in order (422 when there is none).
fn normalise_roles(roles: &[Role]) -> Result<Vec<String>, ApiError> {
    normalised_roles(roles)
        .ok_or_else(|| ApiError::invalid_field("roles", "empty", "a key needs at least one role"))
}

/// Create an API key
///
/// A key with roles (admin, collector, sender, auditor); the secret is shown
/// once.
#[utoipa::path(
    tag = "keys",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "Key created; shown once", body = NewKey),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/keys", wrap = "from_fn(auth::admin)")]
pub async fn create_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.value;
    let name_len = request.name.chars().count();
    if name_len == 0 || name_len > 100 || request.name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "invalid_value",
            "a key name is 1 to 100 characters without control characters",
        ));
    }
    let roles = normalise_roles(&request.roles)?;
    if request.expires_at.is_some_and(|t| t <= state.now()) {
        return Err(ApiError::invalid_field(
            "expires_at",
            "in_the_past",
            "`expires_at` must be in the future",
        ));
    }
    let tenant = caller.tenant.id.clone();
    let expires_at = request.expires_at.map(Timestamp::millis);
    let now = state.now().millis();
    let (row, key) = state
        .db(move |conn| {
            let key = NewApiKey {
                name: &request.name,
                roles: &roles,
                expires_at,
            };
            Ok(keys::create(conn, &tenant, key, now)?)
        })
        .await?;
    tracing::info!(key_id = %row.id, by = %caller.key_id, "api key created");
    let info = KeyInfo::from(row);
    let details = json!({"key_id": info.id, "name": info.name, "roles": info.roles, "expires_at": info.expires_at});
    caller.note(&state, AuditKind::KeyCreated, details).await;
    // The key is shown once: never cached.
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(NewKey {
            id: info.id,
            key,
            roles: info.roles,
        }))
}

/// Revoke an API key
///
/// The key stops working at once; the last admin key cannot be revoked.
#[utoipa::path(
    tag = "keys",
    params(("id" = String, Path, description = "key_<12 hex>", pattern = "^key_[0-9a-f]{12}$")),
    responses(
        (status = 204, description = "Revoked; it stops working at once"),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/v1/keys/{id}", wrap = "from_fn(auth::admin)")]
pub async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let id = id.into_inner();
    let revoked = id.clone();
    let now = state.now().millis();
    state
        .db(move |conn| Ok(keys::revoke(conn, &tenant, &id, now)?))
        .await?;
    tracing::info!(key_id = %revoked, by = %caller.key_id, "api key revoked");
    let details = json!({"key_id": revoked});
    caller.note(&state, AuditKind::KeyRevoked, details).await;
    Ok(HttpResponse::NoContent().finish())
}
