//! `/healthz` (alive), `/readyz` (database reachable, migrations current,
//! master key loaded), `/problems/{code}`, and `/metrics` (on its own
//! listener).

use super::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::store::connection::{migrations_current, ping};
use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

/// How long a readiness probe waits for a database connection.
const READINESS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness
///
/// 200 while the process serves requests.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is alive", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The Prometheus metrics of this instance (OpenMetrics text), served on
/// the metrics listener only (`startup.rs`; 404 on the API's, and not in
/// its OpenAPI document). The gauges of the logs and dead letters are read
/// from the database at each scrape and cover every tenant together: no
/// label names a tenant.
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (logs, waiting, reviews, deliveries) = state
        .db(|conn| {
            Ok((
                crate::store::log::overview(conn)?,
                crate::store::dead_letters::waiting_count(conn)?,
                crate::store::reviews::count_waiting(conn)?,
                crate::store::events::counts(conn)?,
            ))
        })
        .await?;
    let m = crate::metrics::metrics();
    // One scrape sets the gauges and renders them before another may.
    static SCRAPE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SCRAPE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    m.logs.set(logs.logs);
    m.log_entries.set(logs.entries);
    m.unsigned_entries.set(logs.unsigned);
    let lag = logs
        .oldest_waiting_since
        .map_or(0.0, |at| (state.now().millis() - at).max(0) as f64 / 1000.0);
    m.oldest_unsigned_seconds.set(lag);
    m.dead_letters_waiting.set(waiting);
    m.reviews_waiting.set(reviews);
    for status in ["pending", "delivered", "failed"] {
        let count = deliveries
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        m.event_deliveries
            .get_or_create(&vec![("status", status.to_owned())])
            .set(count);
    }
    let pool = state.pool.state();
    let connections = |state: &str| vec![("state", state.to_owned())];
    m.pool_connections
        .get_or_create(&connections("in_use"))
        .set(i64::from(pool.connections - pool.idle_connections));
    m.pool_connections
        .get_or_create(&connections("idle"))
        .set(i64::from(pool.idle_connections));
    m.pool_connections
        .get_or_create(&connections("max"))
        .set(i64::from(state.pool.max_size()));
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(m.render()))
}

/// Readiness
///
/// 200 when the database answers and its schema is current; 503 otherwise.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // A database that is away answers within two seconds, not the pool's ten.
    let current = state
        .db_waiting(Some(READINESS_PATIENCE), |conn| {
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

/// Describe a problem type
///
/// What a problem `code` means and what to do about it.
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
