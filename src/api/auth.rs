//! Who is calling: an API key of a tenant with its roles, or the operator.
//! Keys are looked up by their id and compared by SHA-256 in constant time;
//! a revoked key stops working on the next request of every instance.

use super::limits::client_addr;
use super::AppState;
pub use crate::domain::access::Role;
use crate::domain::number::E164;
use crate::error::ApiError;
use crate::keys;
use crate::store::connection::meta_get;
use crate::store::tenants::{self, TenantRow};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

/// A tenant's API key that passed authentication.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub roles: Vec<Role>,
    pub tenant: TenantRow,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin) || self.roles.contains(&role)
    }

    /// A number of a request body, national ones in the tenant's
    /// `default_region` (422 `invalid_number`).
    pub fn parse_number(&self, number: &str, region: Option<&str>) -> Result<E164, ApiError> {
        let default_region = self.tenant.default_region.as_deref();
        Ok(crate::domain::recording::parse_number(
            number,
            region,
            default_region,
        )?)
    }

    /// 403 unless the key has one of the roles.
    pub fn require(&self, any_of: &[Role]) -> Result<(), ApiError> {
        if any_of.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<&str> = any_of.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this operation needs a key with the role {}",
                names.join(" or ")
            )))
        }
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <key>"))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not readable"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <key>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized("send Authorization: Bearer <key>"));
    }
    Ok(token.trim().to_owned())
}

fn bad_credentials() -> ApiError {
    ApiError::unauthorized("the key is unknown, revoked or expired")
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let client = client_addr(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            state.guards.authentication_allowed(client)?;
            let failed = |refusal: ApiError| {
                state.guards.authentication_failed(client, "api key");
                refusal
            };
            let token = token.map_err(failed)?;
            let key_id = keys::api_key_id(&token).ok_or_else(|| failed(bad_credentials()))?;
            let presented = keys::secret_sha256(&token);
            let lookup_id = key_id.clone();
            let found = state
                .db(move |conn| Ok(tenants::find_api_key(conn, &lookup_id)?))
                .await?;
            let now = state.now().millis();
            let (key, tenant) = found.ok_or_else(|| failed(bad_credentials()))?;
            if !keys::same_secret_hash(&key.key_sha256, &presented) || !key.is_active(now) {
                tracing::info!(key_id = %key_id, "the key does not match, or is revoked or expired");
                return Err(failed(bad_credentials()));
            }
            state.guards.key_allowed(&key_id)?;
            if key
                .last_used_at
                .is_none_or(|t| t + tenants::TOUCH_INTERVAL_MILLIS <= now)
            {
                let touch_id = key_id.clone();
                // Outside the request's transaction; losing an update is harmless.
                actix_web::rt::spawn(async move {
                    let _ = state
                        .db(move |conn| {
                            Ok(tenants::touch_api_key(conn, &touch_id, now).map(|_| ())?)
                        })
                        .await;
                });
            }
            let roles = key
                .role_names()
                .iter()
                .filter_map(|r| Role::parse(r))
                .collect();
            Ok(Caller {
                key_id,
                roles,
                tenant,
            })
        })
    }
}

/// The operator (creates tenants), by the operator token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

/// Name of the stored operator token hash in `meta`.
pub const OPERATOR_TOKEN_META: &str = "operator_token_sha256";

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let client = client_addr(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            state.guards.authentication_allowed(client)?;
            let failed = |refusal: ApiError| {
                state.guards.authentication_failed(client, "operator token");
                refusal
            };
            let token = token.map_err(failed)?;
            let presented = keys::secret_sha256(&token);
            let expected = match state.configured_operator_sha256.clone() {
                Some(hash) => Some(hash),
                None => {
                    state
                        .db(|conn| Ok(meta_get(conn, OPERATOR_TOKEN_META)?))
                        .await?
                }
            };
            if expected.is_some_and(|hash| keys::same_secret_hash(&hash, &presented)) {
                return Ok(Operator);
            }
            if let Some(key_id) = keys::api_key_id(&token) {
                // A valid tenant key has the wrong role (403); anything else is bad credentials.
                let found = state
                    .db(move |conn| Ok(tenants::find_api_key(conn, &key_id)?))
                    .await?;
                let valid = found.is_some_and(|(key, _)| {
                    keys::same_secret_hash(&key.key_sha256, &presented)
                        && key.is_active(state.now().millis())
                });
                if valid {
                    return Err(ApiError::forbidden(
                        "this operation needs the operator token, not a tenant's key",
                    ));
                }
            }
            Err(failed(ApiError::unauthorized(
                "the operator token is not valid",
            )))
        })
    }
}
