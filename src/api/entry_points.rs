//! `POST`/`GET /v1/entry-points`, `GET /v1/entry-points/{id}/qr.svg` and
//! `.png` (admin): campaign entry points, their click-to-chat links and QR
//! codes (docs/entry-points.md).

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::AppState;
use crate::domain::entry_point::{qr_png, qr_svg, EntryPoint, EntryPointInput};
use crate::error::{ApiError, Problem};
use crate::services::entry_points as service;
use crate::store::audit::AuditKind;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPointList {
    pub entry_points: Vec<EntryPoint>,
}

/// Create an entry point
///
/// A phrase for a poster, a package or a receipt, with its click-to-chat
/// link: sent by WhatsApp, it is an opt-in that names the entry point.
#[utoipa::path(
    tag = "channels",
    request_body = EntryPointInput,
    responses(
        (status = 201, description = "The entry point with its link", body = EntryPoint),
        (status = "4XX", description = "Problem (409 `entry_point_exists`; 422: a one-word or reserved phrase, a prompt that does not name the brand, no WhatsApp number)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/entry-points", wrap = "from_fn(auth::admin)")]
pub async fn create_entry_point(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<EntryPointInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.value;
    let tenant = caller.tenant.clone();
    let now = state.now();
    let created = state
        .db(move |conn| Ok(service::create(conn, &tenant, input, now)?))
        .await?;
    let details = json!({"entry_point": created.id, "brand": created.brand});
    caller
        .note(&state, AuditKind::EntryPointCreated, details)
        .await;
    Ok(HttpResponse::Created().json(created))
}

/// List entry points
///
/// The tenant's campaign entry points with their links.
#[utoipa::path(
    tag = "channels",
    responses(
        (status = 200, description = "Oldest first", body = EntryPointList),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/entry-points", wrap = "from_fn(auth::admin)")]
pub async fn list_entry_points(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let entry_points = state
        .db(move |conn| Ok(service::list(conn, &tenant)?))
        .await?;
    Ok(HttpResponse::Ok().json(EntryPointList { entry_points }))
}

/// The entry point `id` of the caller's tenant, or 404.
async fn entry_point(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> Result<EntryPoint, ApiError> {
    let tenant = caller.tenant.id.clone();
    state
        .db(move |conn| Ok(service::find(conn, &tenant, &id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no entry point with this id"))
}

/// An entry point's QR code, SVG
///
/// The QR code of the entry point's link, to print.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "The entry point's id")),
    responses(
        (status = 200, description = "The QR code", content((String = "image/svg+xml"))),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/entry-points/{id}/qr.svg", wrap = "from_fn(auth::admin)")]
pub async fn entry_point_svg(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = entry_point(&state, &caller, id.into_inner()).await?;
    let svg =
        qr_svg(&found.link).ok_or_else(|| ApiError::internal("the link does not fit a QR code"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml"))
        .body(svg))
}

/// An entry point's QR code, PNG
///
/// The QR code of the entry point's link, to print.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "The entry point's id")),
    responses(
        (status = 200, description = "The QR code", content((String = "image/png"))),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/entry-points/{id}/qr.png", wrap = "from_fn(auth::admin)")]
pub async fn entry_point_png(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let found = entry_point(&state, &caller, id.into_inner()).await?;
    let png =
        qr_png(&found.link).ok_or_else(|| ApiError::internal("the link does not fit a QR code"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/png"))
        .body(png))
}
