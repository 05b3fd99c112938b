//! The middleware that counts every answered request for the metrics: by
//! the route's pattern (never the path, which may name a tenant), method
//! and status, with its latency; and each request's span, with the one
//! line a problem answer logs.

use crate::error::ApiError;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use std::time::Instant;

/// Counts the request once its answer's head is ready.
pub async fn count(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    // A method is any token a client sends: only the known ones are labels.
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    let sent = req.method().as_str();
    let method: &'static str = KNOWN.into_iter().find(|m| *m == sent).unwrap_or("other");
    let answered = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    match &answered {
        Ok(res) => {
            let route = res.request().match_pattern();
            crate::metrics::request(
                route.as_deref().unwrap_or("unmatched"),
                method,
                res.status().as_u16(),
                seconds,
            );
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            crate::metrics::request("unmatched", method, status, seconds);
        }
    }
    answered
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
            .as_error::<ApiError>()
            .map_or("unexpected", |e| e.code.as_str());
        let _inside = span.enter();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, "server error");
        } else {
            tracing::info!(status = status.as_u16(), code, "client error");
        }
    }
}
