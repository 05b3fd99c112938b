//! The tracing subscriber: text or JSON lines on stderr, filtered by
//! `RUST_LOG` (default `info`). Request ids come from `tracing-actix-web`.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls are ignored (tests).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The request span: like `tracing-actix-web`'s default, but the target is
/// the path alone, since query strings may carry secrets (a webhook
/// handshake's verify token).
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_default(),
            http.target = %request.path(),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    /// Records the status; an answer with a problem logs one short line:
    /// its status and code, in the request's span (method, route, request
    /// id). Never the problem's detail or a debug dump: they may echo what
    /// the client sent. A server error's cause is logged where it is
    /// answered (`error.rs`).
    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error()),
            Err(error) => (error.as_response_error().status_code(), Some(error)),
        };
        span.record("http.status_code", status.as_u16());
        let ok = if status.is_server_error() {
            "ERROR"
        } else {
            "OK"
        };
        span.record("otel.status_code", ok);
        let Some(error) = error else {
            return;
        };
        let code = error
            .as_error::<crate::error::ApiError>()
            .map_or("unexpected", |e| e.code.as_str());
        let _inside = span.enter();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, "server error");
        } else {
            tracing::info!(status = status.as_u16(), code, "client error");
        }
    }
}
