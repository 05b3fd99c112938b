//! Runs a write under the `Idempotency-Key` header (docs/api.md).

use super::auth::Caller;
use super::AppState;
use crate::domain::time::Timestamp;
use crate::error::{ApiError, ErrorCode};
use crate::keys::MasterKey;
use crate::store::idempotency::{self, Begin, IdempotencyScope};
use crate::store::DbConn;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use utoipa::IntoParams;

/// The `Idempotency-Key` header as the OpenAPI document declares it (the
/// handlers read it through [`run_grouped`]; only its shape is used).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    /// Retry safely: the first answer is replayed for 24 h; 1 to 255 visible ASCII characters
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

pub const HEADER: &str = "Idempotency-Key";

fn scope_of(
    state: &AppState,
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
            ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                "an Idempotency-Key is 1 to 255 visible ASCII characters",
            )
        })?;
    // Kept is the tenant's keyed hash of the body, never its plain hash: a
    // body names a person, and a plain hash is recovered by guessing.
    let tenant = &caller.tenant.id;
    let keyed = state
        .master
        .keyed_hash(tenant, &["idempotency", request_sha256]);
    Ok(Some(IdempotencyScope::new(
        tenant,
        &caller.key_id,
        route,
        key,
        (&keyed, request_sha256),
    )))
}

fn json_response(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body)
}

/// An idempotent request as its handler read it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub state: &'a AppState,
    pub req: &'a HttpRequest,
    pub caller: &'a Caller,
    /// The route's name in the idempotency scope (`"opt-ins"`, …).
    pub route: &'static str,
    /// The SHA-256 of the body, hex.
    pub body_sha256: &'a str,
}

impl<'a> Request<'a> {
    pub fn new(
        state: &'a AppState,
        req: &'a HttpRequest,
        caller: &'a Caller,
        route: &'static str,
        body_sha256: &'a str,
    ) -> Self {
        Self {
            state,
            req,
            caller,
            route,
            body_sha256,
        }
    }
}

/// Runs `work` once per idempotency key. `work` gets the scope to store its
/// answer with its own write, and returns the status and JSON body.
pub async fn run<F>(request: Request<'_>, work: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConn, Option<&IdempotencyScope>) -> Result<(u16, String), ApiError>
        + Send
        + 'static,
{
    run_in(request, (|body| body, Via::Alone), work).await
}

/// What an append to the caller's log is given beside its connection:
/// the request's idempotency scope (when it has a key), the master key,
/// the caller and the server's clock read when the work runs.
pub struct Append<'a> {
    pub scope: Option<&'a IdempotencyScope>,
    pub master: &'a MasterKey,
    pub caller: &'a Caller,
    pub now: Timestamp,
}

/// [`run`] for an append to the caller's log: the work joins the log's
/// next group commit (`AppState::write`).
pub async fn run_grouped<F>(request: Request<'_>, work: F) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConn, Append<'_>) -> Result<(u16, String), ApiError> + Send + 'static,
{
    run_grouped_with_replay(request, |body| body, work).await
}

/// How the work of an idempotent request reaches the database.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// On its own connection, in its own transactions.
    Alone,
    /// In its log's next group commit.
    Grouped,
}

/// [`run_grouped`] for a write that stores less than it answers (an
/// interaction keeps no number): `replay` turns the stored answer into the
/// one sent.
pub async fn run_grouped_with_replay<F>(
    request: Request<'_>,
    replay: impl Fn(String) -> String,
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConn, Append<'_>) -> Result<(u16, String), ApiError> + Send + 'static,
{
    let master = request.state.master.clone();
    let clock = request.state.clock.clone();
    let appender = request.caller.clone();
    let work = move |conn: &mut DbConn, scope: Option<&IdempotencyScope>| {
        let append = Append {
            scope,
            master: &master,
            caller: &appender,
            now: clock.now(),
        };
        work(conn, append)
    };
    run_in(request, (replay, Via::Grouped), work).await
}

async fn run_in<F>(
    request: Request<'_>,
    (replay, via): (impl Fn(String) -> String, Via),
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConn, Option<&IdempotencyScope>) -> Result<(u16, String), ApiError>
        + Send
        + 'static,
{
    let Request {
        state,
        req,
        caller,
        route,
        body_sha256,
    } = request;
    let scope = scope_of(state, req, caller, route, body_sha256)?;
    if let Some(scope) = scope.clone() {
        let now = state.now().millis();
        let begun = state
            .db(move |conn| Ok(idempotency::begin(conn, &scope, now)?))
            .await?;
        if begun != Begin::Proceed {
            return answer_without_work(begun, &replay);
        }
        if let Some(gate) = &state.write_gate {
            // Tests only: hold this request while it owns its key.
            gate.acquire().await.map_err(ApiError::internal)?.forget();
        }
    }
    let scope_for_work = scope.clone();
    let work = move |conn: &mut DbConn| work(conn, scope_for_work.as_ref());
    let outcome = match via {
        Via::Alone => state.db(work).await,
        Via::Grouped => state.write(&caller.tenant.id, work).await,
    };
    match (outcome, scope) {
        (Ok((status, body)), _) => Ok(json_response(status, body)),
        (Err(error), Some(scope)) if error.code == ErrorCode::IdempotencyInProgress => {
            // A retry took the key over while this request stalled, and
            // this one wrote nothing: answer as that retry's request would
            // be answered now (its answer, or 409 while it runs).
            let now = state
                .db(move |conn| Ok(idempotency::current(conn, &scope)?))
                .await?;
            answer_without_work(now, &replay)
        }
        (Err(error), Some(scope)) => {
            // Let the client retry with the same key once the cause is fixed.
            let _ = state
                .db(move |conn| Ok(idempotency::abandon(conn, &scope)?))
                .await;
            Err(error)
        }
        (Err(error), None) => Err(error),
    }
}

/// The answer to a key that was used before: a replay, 409 or 422.
fn answer_without_work(
    begun: Begin,
    replay: &impl Fn(String) -> String,
) -> Result<HttpResponse, ApiError> {
    match begun {
        Begin::Replay { status, body } => {
            let mut response = json_response(status, replay(body));
            response.headers_mut().insert(
                header::HeaderName::from_static("idempotent-replayed"),
                header::HeaderValue::from_static("true"),
            );
            Ok(response)
        }
        Begin::InProgress | Begin::Proceed => Err(ApiError::new(
            ErrorCode::IdempotencyInProgress,
            "a request with this Idempotency-Key is still being processed",
        )),
        Begin::Reused => Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different body",
        )),
    }
}
