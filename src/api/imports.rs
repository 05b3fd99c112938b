//! `POST /v1/imports`, `GET /v1/imports/{id}` (admin): bulk import of
//! existing consent (docs/import.md). The body is written to a file under
//! the data directory as it arrives (memory stays flat), checked when the
//! mode is `all_or_nothing`, then recorded in the background by
//! `services/imports.rs`; progress is read back by id.

use super::auth::{self, Caller};
use super::body::{declared_length, spool_body};
use super::AppState;
use crate::domain::evidence::FieldError;
use crate::domain::import::{self, is_import_id, ImportFormat, ImportMode, ImportStanding};
use crate::domain::problem::ErrorCode as Code;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::services::imports::{self as service, Import, Standing, Started};
use actix_web::middleware::from_fn;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::io::BufReader;
use std::sync::atomic::{AtomicUsize, Ordering};
use utoipa::{IntoParams, ToSchema};

/// Imports recorded at once by one instance.
const MAX_RUNNING: usize = 4;
static RUNNING: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The import's id, yours: 1 to 128 letters, digits, `.`, `_`, `:` or `-`. Sending the same id again records nothing twice and completes an import cut short.
    pub id: String,
    /// `all_or_nothing` (default): every line is checked first, and one refused line refuses the import; `valid_lines`: the valid lines are recorded, the refused ones listed.
    #[param(value_type = Option<ImportMode>, inline)]
    pub mode: Option<String>,
}

/// An import taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportAccepted {
    pub id: String,
}

/// The query's id and mode, checked.
fn parsed(query: &ImportQuery) -> Result<ImportMode, ApiError> {
    if !is_import_id(&query.id) {
        return Err(ApiError::for_field(
            ErrorCode::InvalidRequest,
            "id",
            "invalid_value",
            "`id` is 1 to 128 letters, digits, `.`, `_`, `:` or `-`",
        ));
    }
    match query.mode.as_deref() {
        None => Ok(ImportMode::AllOrNothing),
        Some(mode) => ImportMode::parse(mode).ok_or_else(|| {
            ApiError::for_field(
                ErrorCode::InvalidRequest,
                "mode",
                "invalid_value",
                "`mode` is all_or_nothing or valid_lines",
            )
        }),
    }
}

fn format_of(req: &HttpRequest) -> Result<ImportFormat, ApiError> {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ImportFormat::of_media_type)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "an import is sent as Content-Type: application/x-ndjson or text/csv",
            )
        })
}

/// A place among the imports this instance records at once, given back
/// when dropped.
struct Slot;

impl Slot {
    fn take() -> Result<Self, ApiError> {
        let taken = RUNNING.fetch_add(1, Ordering::SeqCst);
        if taken >= MAX_RUNNING {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                ErrorCode::Overloaded,
                "this instance is recording as many imports as it may at once",
            )
            .retry_after(5));
        }
        Ok(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The refusal of an `all_or_nothing` import, naming each listed line.
fn refused(standing: &Standing) -> ApiError {
    let errors = standing
        .refused_lines
        .iter()
        .map(|p| {
            let code = Code::parse(&p.code).map_or("invalid_request", Code::as_str);
            FieldError::new(format!("line {}", p.line), code)
        })
        .collect();
    ApiError::new(
        ErrorCode::ImportRefused,
        format!(
            "{} lines refused, nothing recorded; GET /v1/imports/{} lists them",
            standing.refused, standing.id
        ),
    )
    .with_errors(errors)
}

/// Import consent records
///
/// A file of existing opt-ins and opt-outs (NDJSON, or CSV with a header
/// line), each line a request body of `POST /v1/opt-ins` or
/// `/v1/opt-outs` with `"type":"opt_in"|"opt_out"`, recorded as a backfill
/// in the order given by this admin key (docs/import.md).
#[utoipa::path(
    tag = "recording",
    params(ImportQuery),
    request_body(content((String = "application/x-ndjson"), (String = "text/csv")), description = "The file as it is: one record a line (at most `CONSENT_LEDGER_IMPORT_MAX_MIB`, default 1024 MiB)"),
    responses(
        (status = 202, description = "Taken (or done before with this id): recorded in the background; `GET /v1/imports/{id}` shows progress", body = ImportAccepted),
        (status = 409, description = "`import_running`: an import with this id is being recorded", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the operator's limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither application/x-ndjson nor text/csv", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`import_refused` (all_or_nothing: nothing recorded; `errors` names each line as `line <n>` with its code), or a bad `id` or `mode`", body = Problem, content_type = "application/problem+json"),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/v1/imports", wrap = "from_fn(auth::admin)")]
pub async fn create_import(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mode = parsed(&query)?;
    let format = format_of(&req)?;
    let slot = Slot::take()?;
    let limits = (declared_length(&req), state.guards.limits.import_max_bytes);
    let dir = state.settings.data_dir.join("imports");
    let file = spool_body(&state, payload, limits, &dir).await?;
    let path = file.path().to_path_buf();
    let (id, now) = (query.into_inner().id, state.now());
    let (tenant, collector) = (caller.tenant.clone(), caller.key_id.clone());
    let taken = id.clone();
    let started = state
        .db(move |conn| {
            let import = Import {
                tenant: &tenant,
                id: &taken,
                mode,
                format,
                collector: &collector,
            };
            let lines = || lines_of(&path, format);
            Ok(service::start(conn, &import, lines, (now, false))?)
        })
        .await?;
    match started {
        Started::Run => {
            record_in_background(&state, &caller, (id.clone(), mode, format), (file, slot))?
        }
        Started::Done(_) => {}
        Started::Running => {
            return Err(ApiError::new(
                ErrorCode::ImportRunning,
                format!("import {id} is being recorded; GET /v1/imports/{id} shows its progress"),
            ))
        }
        Started::Refused(standing) => return Err(refused(&standing)),
    }
    Ok(HttpResponse::Accepted().json(ImportAccepted { id }))
}

/// The lines of the spooled file (an unreadable file reads as none: the
/// recording then finds nothing, and the import stays to be sent again).
fn lines_of(
    path: &std::path::Path,
    format: ImportFormat,
) -> Box<dyn Iterator<Item = import::ReadLine>> {
    match std::fs::File::open(path) {
        Ok(file) => import::lines(format, BufReader::with_capacity(1 << 16, file)),
        Err(e) => {
            tracing::error!(error = %e, "an import's spooled file could not be opened");
            Box::new(std::iter::empty())
        }
    }
}

/// Records a started import on a thread of its own, retrying a few times
/// while the database is away (each try starts at the first line not done).
fn record_in_background(
    state: &AppState,
    caller: &Caller,
    (id, mode, format): (String, ImportMode, ImportFormat),
    (file, slot): (tempfile::NamedTempFile, Slot),
) -> Result<(), ApiError> {
    let (pool, master, clock) = (
        state.pool.clone(),
        state.master.clone(),
        state.clock.clone(),
    );
    let (tenant, collector) = (caller.tenant.clone(), caller.key_id.clone());
    let spawned = std::thread::Builder::new()
        .name("import".into())
        .spawn(move || {
            let _slot = slot;
            let import = Import {
                tenant: &tenant,
                id: &id,
                mode,
                format,
                collector: &collector,
            };
            for attempt in 1..=5u32 {
                let lines = lines_of(file.path(), format);
                let recorded = pool.get().map_err(|e| (e.to_string(), false)).and_then(|mut conn| {
                    service::record(&mut conn, &master, &import, lines, (&clock, &mut |_| {}))
                        .map_err(|e| (e.to_string(), e.is_refusal()))
                });
                match recorded {
                    Ok(standing) => {
                        tracing::info!(tenant = %tenant.id, import = %id, recorded = standing.recorded, refused = standing.refused, "import done");
                        return;
                    }
                    // Taken over by another request or process: it records the rest.
                    Err((e, true)) => {
                        tracing::warn!(tenant = %tenant.id, import = %id, error = %e, "import left to whoever took it over");
                        return;
                    }
                    Err((e, false)) => {
                        tracing::error!(tenant = %tenant.id, import = %id, attempt, error = %e, "import interrupted; retrying from its first line not done");
                        std::thread::sleep(std::time::Duration::from_secs(u64::from(attempt) * 2));
                    }
                }
            }
        });
    spawned
        .map(|_| ())
        .map_err(|e| ApiError::internal(format!("import thread: {e}")))
}

/// Read an import's progress
///
/// Where an import stands: lines read, recorded and refused, and the
/// refused lines with their codes.
#[utoipa::path(
    tag = "recording",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The import", body = ImportStanding),
        (status = "4XX", description = "Problem", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/imports/{id}", wrap = "from_fn(auth::admin)")]
pub async fn get_import(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let tenant = caller.tenant.clone();
    let standing = state
        .read(move |conn| Ok(service::standing(conn, &tenant, &id)?))
        .await?
        .ok_or_else(|| ApiError::not_found("no import with this id"))?;
    Ok(HttpResponse::Ok().json(standing))
}
