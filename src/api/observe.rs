//! The middleware that counts every answered request for the metrics: by
//! the route's pattern (never the path, which may name a tenant), method
//! and status, with its latency.

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
