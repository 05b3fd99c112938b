//! `GET`/`POST /v1/forms`, `GET`/`PUT /v1/forms/{id}` (admin): the hosted
//! opt-in forms (docs/pages.md). A changed definition makes a new
//! version; every version stays. The pages themselves: `api/pages/`.

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::AppState;
use crate::domain::access::TenantId;
use crate::domain::form::{FormDefinition, FormInput};
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::forms::save;
use crate::store::audit::AuditKind;
use crate::store::forms::{self, StoredForm};
use actix_web::middleware::from_fn;
use actix_web::{get, post, put, web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A form at its current version, with where it is served.
#[derive(Debug, Serialize, ToSchema)]
pub struct FormView {
    pub id: String,
    /// Starts at 1; each changed definition adds one.
    pub version: i64,
    #[serde(flatten)]
    pub definition: FormDefinition,
    /// `CONSENT_LEDGER_PUBLIC_URL/forms/<tenant>/<id>`.
    pub page_url: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FormList {
    pub forms: Vec<FormView>,
}

fn view(state: &AppState, tenant: &TenantId, form: StoredForm) -> FormView {
    FormView {
        page_url: format!("{}/forms/{tenant}/{}", state.settings.public_url, form.id),
        id: form.id,
        version: form.version,
        definition: form.definition,
        created_at: Timestamp::from_millis(form.created_at),
        updated_at: Timestamp::from_millis(form.updated_at),
    }
}

/// List forms
///
/// The tenant's hosted forms, each at its current version.
#[utoipa::path(
    tag = "forms",
    responses(
        (status = 200, description = "The tenant's forms at their current versions", body = FormList),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/forms", wrap = "from_fn(auth::admin)")]
pub async fn list_forms(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let found = state
        .db(move |conn| Ok(forms::list(conn, &tenant)?))
        .await?;
    let forms = found
        .into_iter()
        .map(|f| view(&state, &caller.tenant.id, f))
        .collect();
    Ok(HttpResponse::Ok().json(FormList { forms }))
}

/// Create a form
///
/// A hosted opt-in form: brand, consent text, purposes, channels, language,
/// privacy link.
#[utoipa::path(
    tag = "forms",
    request_body = FormInput,
    responses(
        (status = 201, description = "The form, version 1", body = FormView),
        (status = "4XX", description = "Problem (409: the id exists)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/forms", wrap = "from_fn(auth::admin)")]
pub async fn create_form(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<FormInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.value;
    let tenant = caller.tenant.id.clone();
    let now = state.now().millis();
    let form = state
        .db(move |conn| Ok(save(conn, &tenant, input, false, now)?))
        .await?;
    let details = json!({"form": form.id, "version": form.version});
    caller.note(&state, AuditKind::FormSaved, details).await;
    Ok(HttpResponse::Created().json(view(&state, &caller.tenant.id, form)))
}

/// Read a form
///
/// A form's current definition and its version.
#[utoipa::path(
    tag = "forms",
    params(("id" = String, Path, description = "The form id")),
    responses(
        (status = 200, description = "The form at its current version", body = FormView),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/forms/{id}", wrap = "from_fn(auth::admin)")]
pub async fn get_form(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.id.clone();
    let id = id.into_inner();
    let form = state
        .db(move |conn| Ok(forms::find(conn, &tenant, &id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no such form"))?;
    Ok(HttpResponse::Ok().json(view(&state, &caller.tenant.id, form)))
}

/// Change a form
///
/// Saves a new immutable version of the form; pages served from the old
/// version are told it changed.
#[utoipa::path(
    tag = "forms",
    params(("id" = String, Path, description = "The form id; must equal the body's `id`")),
    request_body = FormInput,
    responses(
        (status = 200, description = "The form; a new version when the definition changed", body = FormView),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/v1/forms/{id}", wrap = "from_fn(auth::admin)")]
pub async fn replace_form(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: ApiJson<FormInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.value;
    if input.id != *id {
        return Err(ApiError::invalid_field(
            "id",
            "invalid_value",
            "the body's `id` must be the form id of the path",
        ));
    }
    let tenant = caller.tenant.id.clone();
    let now = state.now().millis();
    let form = state
        .db(move |conn| Ok(save(conn, &tenant, input, true, now)?))
        .await?;
    let details = json!({"form": form.id, "version": form.version});
    caller.note(&state, AuditKind::FormSaved, details).await;
    Ok(HttpResponse::Ok().json(view(&state, &caller.tenant.id, form)))
}
