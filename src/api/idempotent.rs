//! Runs a write under the `Idempotency-Key` header (SPEC section 10).

use super::auth::Caller;
use super::AppState;
use crate::error::ApiError;
use crate::store::idempotency::{self, Begin, IdempotencyScope};
use crate::store::DbConn;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

pub const HEADER: &str = "Idempotency-Key";

fn scope_of(
    req: &HttpRequest,
    caller: &Caller,
    route: &'static str,
    request_sha256: &str,
) -> Result<Option<IdempotencyScope>, ApiError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_idempotency_key",
                "an Idempotency-Key is 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(IdempotencyScope::new(
        &caller.tenant.id,
        &caller.key_id,
        route,
        key,
        request_sha256,
    )))
}

fn json_response(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body)
}

/// Runs `work` once per idempotency key. `work` gets the scope to store its
/// answer with its own write, and returns the status and JSON body.
pub async fn run<F>(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    route: &'static str,
    request_sha256: &str,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConn, Option<&IdempotencyScope>) -> Result<(u16, String), ApiError>
        + Send
        + 'static,
{
    let scope = scope_of(req, caller, route, request_sha256)?;
    if let Some(scope) = scope.clone() {
        let now = state.now().millis();
        let begun = state
            .db(move |conn| Ok(idempotency::begin(conn, &scope, now)?))
            .await?;
        match begun {
            Begin::Proceed => {}
            Begin::Replay { status, body } => {
                let mut response = json_response(status, body);
                response.headers_mut().insert(
                    header::HeaderName::from_static("idempotent-replayed"),
                    header::HeaderValue::from_static("true"),
                );
                return Ok(response);
            }
            Begin::InProgress => {
                return Err(ApiError::conflict(
                    "idempotency_in_progress",
                    "a request with this Idempotency-Key is still being processed",
                ))
            }
            Begin::Reused => {
                return Err(ApiError::unprocessable(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different body",
                ))
            }
        }
    }
    let scope_for_work = scope.clone();
    let outcome = state
        .db(move |conn| work(conn, scope_for_work.as_ref()))
        .await;
    match outcome {
        Ok((status, body)) => Ok(json_response(status, body)),
        Err(error) => {
            if let Some(scope) = scope {
                // Let the client retry with the same key once the cause is fixed.
                let _ = state
                    .db(move |conn| Ok(idempotency::abandon(conn, &scope)?))
                    .await;
            }
            Err(error)
        }
    }
}
