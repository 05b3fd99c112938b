//! Who is calling: an API key of a tenant with its roles, or the operator.
//! Keys are looked up by their id and compared by SHA-256 in constant time;
//! a revoked key stops working on the next request of every instance.

use super::limits::client_addr;
use super::trail;
use super::AppState;
pub use crate::domain::access::Role;
use crate::error::ApiError;
use crate::keys;
use crate::services;
use crate::store::audit::AuditKind;
use crate::store::connection::meta_get;
use crate::store::tenants::{self, TenantRow};
use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use serde_json::json;

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

    /// Adds an event by this key to its tenant's audit trail.
    pub async fn note(&self, state: &AppState, kind: AuditKind, details: serde_json::Value) {
        trail::note(state, &self.tenant.id, &self.key_id, kind, details).await;
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

/// Authenticates the request's API key: the failure budget of the client's
/// address first, then the key by its id and hash, then the key's rate.
fn authenticate(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Caller, ApiError>> {
    let token = bearer(req);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let client = client_addr(req);
    let route = format!("{} {}", req.method(), req.path());
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
            .read(move |conn| Ok(tenants::find_api_key(conn, &lookup_id)?))
            .await?;
        let now = state.now().millis();
        let (key, tenant) = found.ok_or_else(|| failed(bad_credentials()))?;
        let refused = if !keys::same_secret_hash(&key.key_sha256, &presented) {
            Some("wrong_secret")
        } else if key.revoked_at.is_some() {
            Some("revoked")
        } else if !key.is_active(now) {
            Some("expired")
        } else {
            None
        };
        if let Some(why) = refused {
            tracing::info!(key_id = %key_id, "the key does not match, or is revoked or expired");
            let details = json!({
                "key_id": key_id,
                "refused": why,
                "route": route,
                "client": client.map(|c| c.0.to_string()),
            });
            trail::note(
                &state,
                &tenant.id,
                "unauthenticated",
                AuditKind::AuthenticationFailed,
                details,
            )
            .await;
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
                    .db(move |conn| Ok(services::keys::touch(conn, &touch_id, now)?))
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

/// Route middleware (`wrap = "from_fn(auth::admin)"` and its siblings): the
/// caller is authenticated and its role checked before any of the request
/// is read, so a caller that may not call an operation learns nothing of
/// its input (docs/api.md: 401, then 403). The handler takes the
/// [`Caller`] it leaves in the request.
async fn authorize(
    req: ServiceRequest,
    next: Next<BoxBody>,
    any_of: &[Role],
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let judged = match authenticate(req.request()).await {
        Ok(caller) => match caller.require(any_of) {
            Ok(()) => Ok(caller),
            Err(refusal) => {
                refuse_role(&req, &caller).await;
                Err(refusal)
            }
        },
        Err(refusal) => Err(refusal),
    };
    pass_on(req, next, judged).await
}

/// Records in the tenant's trail that a valid key called an operation its
/// roles do not allow.
async fn refuse_role(req: &ServiceRequest, caller: &Caller) {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return;
    };
    let details = json!({
        "key_id": caller.key_id,
        "route": format!("{} {}", req.method(), req.path()),
        "roles": caller.roles,
    });
    caller.note(state, AuditKind::RoleRefused, details).await;
}

/// Calls the route with who was admitted left in the request for its
/// extractor, or answers the refusal without reading anything more.
async fn pass_on<T: 'static>(
    req: ServiceRequest,
    next: Next<BoxBody>,
    judged: Result<T, ApiError>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match judged {
        Ok(admitted) => {
            req.extensions_mut().insert(admitted);
            next.call(req).await
        }
        Err(refusal) => Ok(req.error_response(refusal)),
    }
}

/// What the route's middleware admitted, taken out of the request; a
/// route without that middleware is a mistake of ours (500).
fn admitted<T: 'static>(req: &HttpRequest, missing: &'static str) -> Ready<Result<T, ApiError>> {
    ready(
        req.extensions_mut()
            .remove::<T>()
            .ok_or_else(|| ApiError::internal(missing)),
    )
}

/// Route middleware: a key with the role `admin`.
pub async fn admin(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    authorize(req, next, &[Role::Admin]).await
}

/// Route middleware: a key with the role `collector` (or `admin`).
pub async fn collector(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    authorize(req, next, &[Role::Collector]).await
}

/// Route middleware: a key with the role `sender` (or `admin`).
pub async fn sender(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    authorize(req, next, &[Role::Sender]).await
}

/// Route middleware: a key with the role `collector` or `sender` (or `admin`).
pub async fn collector_or_sender(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    authorize(req, next, &[Role::Collector, Role::Sender]).await
}

/// Route middleware: a key with the role `auditor` (or `admin`).
pub async fn auditor(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    authorize(req, next, &[Role::Auditor]).await
}

/// Route middleware: a key with the role `subscriber` (or `admin`).
pub async fn subscriber(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    authorize(req, next, &[Role::Subscriber]).await
}

/// The caller that the route's middleware authenticated; a route without
/// that middleware answers 500 (a mistake of ours, found by the
/// authorization-matrix test), never an unauthenticated call.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        admitted(req, "this route does not authenticate its caller")
    }
}

/// The operator (creates tenants), by the operator token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

pub use crate::store::connection::OPERATOR_TOKEN_META;

/// Checks the operator token (or tells a valid tenant key that it is the
/// wrong credential: 403).
fn authenticate_operator(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Operator, ApiError>> {
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

/// Route middleware: the operator token, checked before any of the request
/// is read.
pub async fn operator(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let judged = authenticate_operator(req.request()).await;
    pass_on(req, next, judged).await
}

/// The operator that the route's middleware authenticated.
impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        admitted(req, "this route does not authenticate the operator")
    }
}
