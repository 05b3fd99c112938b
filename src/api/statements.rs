//! `POST /v1/statements` (sender): decision statements handed back for
//! safekeeping; `POST /v1/statements/query` (auditor): those of a person's
//! group (docs/statements.md).

use super::auth::{self, Caller};
use super::json::ApiJson;
use super::AppState;
use crate::domain::person::names_a_person;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, Problem};
use crate::services::statements;
use crate::store::audit::AuditKind;
use actix_web::middleware::from_fn;
use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepRequest {
    /// Up to 1,000 statements, each exactly as a check answered it.
    #[schema(max_items = 1000)]
    pub statements: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Kept {
    /// How many statements were handed and are kept (once each).
    pub stored: usize,
}

/// Keep statements
///
/// Decision statements a sender hands back for safekeeping: each is
/// checked against the log's keys and kept once; all or none.
#[utoipa::path(
    tag = "checks",
    request_body = KeepRequest,
    responses(
        (status = 201, description = "Kept", body = Kept),
        (status = "4XX", description = "Problem (422 names the first statement that is not one of this log's, field `statements[i]`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/statements", wrap = "from_fn(auth::sender)")]
pub async fn keep_statements(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<KeepRequest>,
) -> Result<HttpResponse, ApiError> {
    let notes = body.value.statements;
    let now = state.now();
    let tenant = caller.tenant.clone();
    let stored = state
        .db(move |conn| Ok(statements::keep(conn, &tenant, &notes, now)?))
        .await?;
    Ok(HttpResponse::Created().json(Kept { stored }))
}

names_a_person! {
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct StatementQuery {}
}

/// A kept statement.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeptStatement {
    pub statement: String,
    pub received_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeptStatements {
    /// The statements naming any subject of the person's group, oldest
    /// decision first; empty when the tenant holds nothing of the identity.
    pub statements: Vec<KeptStatement>,
}

/// List a person's statements
///
/// The decision statements senders handed back that name a subject of the
/// group of a number or user id.
#[utoipa::path(
    tag = "ledger",
    request_body = StatementQuery,
    responses(
        (status = 200, description = "The kept statements of the person's group", body = KeptStatements),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/statements/query", wrap = "from_fn(auth::auditor)")]
pub async fn query_statements(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<StatementQuery>,
) -> Result<HttpResponse, ApiError> {
    let identity = body.value.identity(caller.tenant.policy.default_region())?;
    let tenant = caller.tenant.clone();
    let master = state.master.clone();
    let found = state
        .db(move |conn| Ok(statements::of_identity(conn, &master, &tenant, &identity)?))
        .await?;
    let listed = KeptStatements {
        statements: found
            .into_iter()
            .map(|row| KeptStatement {
                statement: row.note,
                received_at: Timestamp::from_millis(row.received_at),
            })
            .collect(),
    };
    let details = serde_json::json!({"statements": listed.statements.len()});
    caller
        .note(&state, AuditKind::StatementsRead, details)
        .await;
    Ok(HttpResponse::Ok().json(listed))
}
