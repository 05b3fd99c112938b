//! `/healthz` (alive), `/readyz` (database reachable, migrations current,
//! master key loaded) and `/problems/{code}`.

use super::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::store::connection::{migrations_current, ping};
use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is alive", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let current = state
        .db(|conn| {
            // A connection the server dropped answers 503 here and leaves the pool.
            ping(conn)?;
            Ok(migrations_current(conn))
        })
        .await?;
    if !current {
        return Err(ApiError::new(
            ErrorCode::NotReady,
            "the database schema is not current",
        ));
    }
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}

/// What a problem code means.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemType {
    pub code: &'static str,
    pub status: u16,
    pub title: &'static str,
    pub description: &'static str,
}

#[utoipa::path(
    tag = "operations",
    params(("code" = String, Path, description = "A problem code, e.g. invalid_number")),
    responses(
        (status = 200, description = "What the code means", body = ProblemType),
        (status = 404, description = "Unknown code", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/problems/{code}")]
pub async fn problem_type(code: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let code =
        ErrorCode::parse(&code).ok_or_else(|| ApiError::not_found("no such problem code"))?;
    Ok(HttpResponse::Ok().json(ProblemType {
        code: code.as_str(),
        status: code.status(),
        title: code.title(),
        description: code.description(),
    }))
}
