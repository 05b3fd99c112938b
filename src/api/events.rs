//! Outbound events (admin, docs/events.md): `POST`/`GET`
//! `/v1/event-endpoints`, `DELETE /v1/event-endpoints/{id}`, `GET
//! /v1/event-deliveries` and `POST /v1/event-deliveries/{id}/retry`.

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::paging::page_limit;
use super::AppState;
use crate::domain::change::ChangeType;
use crate::domain::endpoint::AddressPolicy;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::events::deliveries::{self, Delivery};
use crate::services::events::endpoints::{self, Endpoint};
use crate::store::audit::AuditKind;
use actix_web::middleware::from_fn;
use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// `https://…` (`http` only where the operator allows private
    /// addresses); at most 2,048 characters.
    pub url: String,
    /// The change types it takes; all when left out.
    pub types: Option<Vec<ChangeType>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// `ep_` and 12 hex digits.
    pub id: String,
    pub url: String,
    /// The change types it takes; null: all.
    pub types: Option<Vec<ChangeType>>,
    pub created_at: Timestamp,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            types: e.types,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_…`), shown this once.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub event_endpoints: Vec<EndpointView>,
}

/// The URL's host, for the audit trail (a path or query may hold a token).
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Register an event endpoint
///
/// Each change of the feed from now on (of the types given) is POSTed to
/// the URL, signed as Standard Webhooks says with the secret answered here
/// once. At most 10 endpoints per tenant.
#[utoipa::path(
    tag = "events",
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "Registered; the secret is shown this once", body = NewEndpoint),
        (status = "4XX", description = "Problem (409 `endpoint_limit`; 422 a URL that is not https or names an address deliveries may not reach)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/event-endpoints", wrap = "from_fn(auth::admin)")]
pub async fn create_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<EndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let EndpointRequest { url, types } = body.value;
    let policy = AddressPolicy {
        allow_private: state.settings.event_allow_private,
    };
    let (master, tenant, now) = (state.master.clone(), caller.tenant.id.clone(), state.now());
    let registered = state
        .db(move |conn| {
            let asked = (url.as_str(), types);
            Ok(endpoints::register(
                conn, &master, &tenant, asked, policy, now,
            )?)
        })
        .await?;
    let details = serde_json::json!({
        "id": registered.endpoint.id,
        "host": host_of(&registered.endpoint.url),
        "types": registered.endpoint.types,
    });
    caller
        .note(&state, AuditKind::EventEndpointCreated, details)
        .await;
    Ok(HttpResponse::Created().json(NewEndpoint {
        endpoint: registered.endpoint.into(),
        secret: registered.secret,
    }))
}

/// List the event endpoints
///
/// The tenant's endpoints, oldest first, without their secrets.
#[utoipa::path(
    tag = "events",
    responses(
        (status = 200, description = "The endpoints", body = EndpointList),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/event-endpoints", wrap = "from_fn(auth::admin)")]
pub async fn list_endpoints(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let listed = state
        .read(move |conn| Ok(endpoints::list(conn, &tenant)?))
        .await?;
    Ok(HttpResponse::Ok().json(EndpointList {
        event_endpoints: listed.into_iter().map(EndpointView::from).collect(),
    }))
}

/// Delete an event endpoint
///
/// Nothing more is delivered to it; its deliveries, pending or failed, are
/// deleted with it.
#[utoipa::path(
    tag = "events",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/v1/event-endpoints/{id}", wrap = "from_fn(auth::admin)")]
pub async fn delete_endpoint(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (tenant, gone) = (caller.tenant.id.clone(), id.clone());
    state
        .db(move |conn| Ok(endpoints::delete(conn, &tenant, &gone)?))
        .await?;
    caller
        .note(
            &state,
            AuditKind::EventEndpointDeleted,
            serde_json::json!({"id": id}),
        )
        .await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `failed`; all when left out.
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
    /// At most this many, newest change first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` every attempt carries.
    pub id: String,
    pub endpoint_id: String,
    /// The change's entry.
    pub seq: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When it was queued (or last retried by request).
    pub created_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<Timestamp>,
    /// The endpoint's last HTTP status, if it answered.
    pub last_status: Option<i32>,
    /// Why the last attempt failed, when it got no answer.
    pub last_error: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            endpoint_id: d.endpoint_id,
            seq: d.seq,
            status: d.status,
            attempts: d.attempts,
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub event_deliveries: Vec<DeliveryView>,
}

/// List event deliveries
///
/// The tenant's deliveries, newest change first: `?status=failed` lists
/// those retried for 24 hours without a 2xx.
#[utoipa::path(
    tag = "events",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/event-deliveries", wrap = "from_fn(auth::admin)")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let status = query.status.map(DeliveryStatus::as_str);
    let tenant = caller.tenant.id.clone();
    let listed = state
        .read(move |conn| Ok(deliveries::list(conn, &tenant, status, limit)?))
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        event_deliveries: listed.into_iter().map(DeliveryView::from).collect(),
    }))
}

/// Retry a failed delivery
///
/// Sends a failed delivery again at once, and retries it for another 24
/// hours.
#[utoipa::path(
    tag = "events",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "Pending again, due now", body = DeliveryView),
        (status = "4XX", description = "Problem (409 `delivery_not_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/event-deliveries/{id}/retry", wrap = "from_fn(auth::admin)")]
pub async fn retry_delivery(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id, now) = (caller.tenant.id.clone(), id.into_inner(), state.now());
    let retried = state
        .db(move |conn| Ok(deliveries::retry(conn, &tenant, &id, now)?))
        .await?;
    caller
        .note(
            &state,
            AuditKind::EventDeliveryRetried,
            serde_json::json!({"id": retried.id}),
        )
        .await;
    Ok(HttpResponse::Ok().json(DeliveryView::from(retried)))
}
