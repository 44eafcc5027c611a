//! The HTTP client gateways share, with TLS through rustls and *ring*.

use std::time::Duration;

/// Installs *ring* as the process's rustls provider (once; later calls are
/// no-ops). Every TLS connection Avisa makes uses it, so no second crypto
/// library is compiled in.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with the given total timeout per request.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    init_tls();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .pool_max_idle_per_host(32)
        .build()
}

/// Seconds in a `Retry-After` header (delta-seconds form).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Classifies a transport error: every one is worth retrying (the request
/// may not have arrived), and the text never carries the URL (it may hold
/// credentials or numbers).
pub fn transport_error(e: &reqwest::Error) -> crate::GatewayError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    // Timed out after connecting: the request went, the answer did not
    // come. The provider may have the message.
    if e.is_timeout() && !e.is_connect() {
        return crate::GatewayError::InDoubt {
            reason: what.to_string(),
        };
    }
    crate::GatewayError::Retryable {
        reason: what.to_string(),
        retry_after: None,
    }
}
