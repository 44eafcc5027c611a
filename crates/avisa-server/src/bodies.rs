//! Request bodies a client cannot use to hold the server: one declared over
//! the limit is refused before a byte is read (413), and every other body is
//! read here, whole, before the handler runs — within `limits.body_timeout`
//! in all, and, after its first second, at `limits.min_body_rate` bytes a
//! second at least (408 otherwise). A trickle of one byte every few seconds
//! used to reset a per-read timeout and hold its connection for good.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use crate::error::ApiError;

/// What the body reader enforces (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Bytes a second a body must keep up after its first second.
    pub min_rate: u64,
}

/// The grace before the rate counts: a phone's first packet may be slow.
const GRACE: Duration = Duration::from_secs(1);

/// Refuses a body declared too large at once, reads any other whole within
/// the rules, and hands the handler the bytes.
pub async fn read_body(State(rules): State<BodyRules>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()));
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    match declared {
        Some(Some(n)) if n > rules.max_bytes as u64 => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "declared_too_large");
        }
        Some(None) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "declared_too_large"),
        // No body at all: nothing to wait for.
        Some(Some(0)) => return next.run(request).await,
        None if !chunked => return next.run(request).await,
        _ => {}
    }
    let (parts, body) = request.into_parts();
    let started = Instant::now();
    let deadline = started + rules.timeout;
    let mut stream = body.into_data_stream();
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        // The moment this body falls below the rate, with what it has sent.
        let behind = started
            + GRACE
            + Duration::from_secs_f64(bytes.len() as f64 / rules.min_rate.max(1) as f64);
        let until = deadline.min(behind);
        match tokio::time::timeout_at(until, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                if bytes.len() + chunk.len() > rules.max_bytes {
                    return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Some(Err(_))) => return refuse(StatusCode::BAD_REQUEST, "body_broken"),
            Ok(None) => break,
            Err(_) => {
                let why = if until == deadline {
                    "body_timeout"
                } else {
                    "body_too_slow"
                };
                return refuse(StatusCode::REQUEST_TIMEOUT, why);
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The refusal, in the JSON error shape, on a connection that is closed
/// after it (the rest of the body is never read).
fn refuse(status: StatusCode, reason: &'static str) -> Response {
    metrics::counter!("avisa_requests_refused_total", "reason" => reason).increment(1);
    let mut response = ApiError::from_status(status).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
