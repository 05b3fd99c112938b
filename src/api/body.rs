//! Reading a request body, for every route that takes one: at most the
//! route's limit (413), within the body time limit (408, the connection
//! closed), and inside the memory the service keeps for bodies being read
//! (503 `overloaded`), so that clients holding bodies open cannot exhaust
//! memory or hold connections for ever.

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

/// A body read whole; its share of the memory budget is given back when it
/// is dropped.
pub struct Body {
    pub bytes: Vec<u8>,
    _memory: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body exceeds this endpoint's limit of {limit} bytes"),
    )
    .closing()
}

fn overloaded() -> ApiError {
    crate::metrics::refused("body_memory");
    ApiError::new(
        ErrorCode::Overloaded,
        "the service is reading as many request bodies as its memory for them allows",
    )
    .retry_after(1)
    .closing()
}

/// Reads `payload` whole. `declared` is the request's `Content-Length`;
/// `unreadable` the code of a body that breaks off (400).
pub async fn read_body<S>(
    state: &AppState,
    mut payload: S,
    declared: Option<usize>,
    limit: usize,
    unreadable: ErrorCode,
) -> Result<Body, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let guards = &state.guards;
    let timeout = guards.limits.body_timeout;
    let read = async {
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit));
        let mut memory: Option<OwnedSemaphorePermit> = match bytes.capacity() {
            0 => None,
            n => Some(guards.body_memory(n).ok_or_else(overloaded)?),
        };
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|_| ApiError::new(unreadable, "the body could not be read").closing())?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            let grow = (bytes.len() + chunk.len()).saturating_sub(bytes.capacity());
            if grow > 0 {
                let more = guards.body_memory(grow).ok_or_else(overloaded)?;
                match memory.as_mut() {
                    Some(held) => held.merge(more),
                    None => memory = Some(more),
                }
                bytes.reserve_exact(grow);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body {
            bytes,
            _memory: memory,
        })
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(body) => body,
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {} s", timeout.as_secs_f64()),
        )
        .closing()),
    }
}

/// The request's `Content-Length`, when it has a readable one.
pub fn declared_length(req: &actix_web::HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Writes `payload` to a new temporary file in `dir` (an import: its size
/// is bounded by `limit`, not by memory). The time limit applies to each
/// wait for the next chunk, so a large body may take as long as it keeps
/// arriving, and one that stalls is cut off.
pub async fn spool_body<S>(
    state: &AppState,
    mut payload: S,
    (declared, limit): (Option<usize>, u64),
    dir: &std::path::Path,
) -> Result<tempfile::NamedTempFile, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    use std::io::Write;
    let too_large = || too_large(usize::try_from(limit).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n as u64 > limit) {
        return Err(too_large());
    }
    let spooled = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EROFS) | Some(libc::EDQUOT) => {
            ApiError::insufficient_storage(format!("import spool: {e}"))
        }
        _ => ApiError::internal(format!("import spool: {e}")),
    };
    std::fs::create_dir_all(dir).map_err(spooled)?;
    let mut file = tempfile::Builder::new()
        .prefix("import-")
        .tempfile_in(dir)
        .map_err(spooled)?;
    let timeout = state.guards.limits.body_timeout;
    let mut written = 0u64;
    loop {
        let chunk = match tokio::time::timeout(timeout, payload.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!("the body stalled for {} s", timeout.as_secs_f64()),
                )
                .closing())
            }
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|_| {
                ApiError::new(ErrorCode::MalformedBody, "the body could not be read").closing()
            })?,
        };
        written += chunk.len() as u64;
        if written > limit {
            return Err(too_large());
        }
        file.write_all(&chunk).map_err(spooled)?;
    }
    file.flush().map_err(spooled)?;
    Ok(file)
}
