//! `GET`/`POST /v1/brands`, `POST /v1/brands/{name}/retire` (admin). Brands
//! are never renamed; retiring one stops new opt-ins for it.

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::tenants::check_brand_name;
use super::AppState;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::brands;
use crate::store::audit::AuditKind;
use crate::store::tenants::{list_brands as brands_of, BrandRow};
use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrandRequest {
    #[schema(schema_with = crate::domain::openapi::brand_name)]
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrandStatus {
    Active,
    Retired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Brand {
    pub name: String,
    pub status: BrandStatus,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

impl From<BrandRow> for Brand {
    fn from(b: BrandRow) -> Self {
        Self {
            name: b.name,
            status: if b.retired_at.is_some() {
                BrandStatus::Retired
            } else {
                BrandStatus::Active
            },
            created_at: Timestamp::from_millis(b.created_at),
            retired_at: b.retired_at.map(Timestamp::from_millis),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandList {
    pub brands: Vec<Brand>,
}

/// List brands
///
/// The company names the tenant may show, active and retired.
#[utoipa::path(
    tag = "brands",
    responses(
        (status = 200, description = "The tenant's brands, oldest first", body = BrandList),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/brands", wrap = "from_fn(auth::admin)")]
pub async fn list_brands(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id;
    let rows = state.db(move |conn| Ok(brands_of(conn, &tenant)?)).await?;
    Ok(HttpResponse::Ok().json(BrandList {
        brands: rows.into_iter().map(Brand::from).collect(),
    }))
}

/// Add a brand
///
/// A company name opt-ins may show; compared case-insensitively with the
/// others.
#[utoipa::path(
    tag = "brands",
    request_body = CreateBrandRequest,
    responses(
        (status = 201, description = "Brand added", body = Brand),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/brands", wrap = "from_fn(auth::admin)")]
pub async fn create_brand(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateBrandRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = body.value.name;
    check_brand_name(&name, "name")?;
    let tenant = caller.tenant.id.clone();
    let now = state.now().millis();
    let row = state
        .db(move |conn| Ok(brands::create(conn, &tenant, &name, now)?))
        .await?;
    let details = json!({"name": row.name});
    caller.note(&state, AuditKind::BrandCreated, details).await;
    Ok(HttpResponse::Created().json(Brand::from(row)))
}

/// Retire a brand
///
/// Stops new opt-ins, forms and webhook matches for the brand; its recorded
/// opt-ins keep counting for checks that name it.
#[utoipa::path(
    tag = "brands",
    params(("name" = String, Path, description = "The brand's name, URL-encoded; compared after NFC and case folding")),
    responses(
        (status = 200, description = "The brand, now retired", body = Brand),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/brands/{name}/retire", wrap = "from_fn(auth::admin)")]
pub async fn retire_brand(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let name = name.into_inner();
    let now = state.now().millis();
    let row = state
        .db(move |conn| Ok(brands::retire(conn, &tenant, &name, now)?))
        .await?;
    let details = json!({"name": row.name});
    caller.note(&state, AuditKind::BrandRetired, details).await;
    Ok(HttpResponse::Ok().json(Brand::from(row)))
}
