//! The HTTP listener: Avisa's own accept loop, so that no client can hold
//! the server with connections that never finish.
//!
//! - A request's headers must arrive within `limits.header_timeout` (also
//!   the time a kept-alive connection may sit idle waiting for the next
//!   request): a trickled or silent connection is closed.
//! - A request body must arrive within `limits.body_timeout` (a layer in
//!   `lib.rs`: 408).
//! - At most `limits.max_connections` connections are served at once, and
//!   at most `limits.connections_per_address` from one address (the trusted
//!   proxy excepted); one more is answered `503` with `Retry-After` and
//!   closed at once, so one client's flood of idle sockets never takes the
//!   file descriptors `/healthz` and a press need.
//! - Beyond those, `limits.reserved_connections` more are kept for what
//!   saves a person: a press, a cancel, the webhooks (the SMS trigger, the
//!   voice line, delivery receipts) and the health checks. With the common
//!   pool full, a new connection's request line is read first (peeked, for
//!   at most half a second, at most 512 at once) and only such a request gets a
//!   place in the reserve: a flood of idle sockets or other requests never
//!   takes the place a press needs. A reserved connection serves that one
//!   request (503 for anything else).
//! - At start the soft limit of open files is raised to the hard one
//!   ([`raise_open_files`]), and the connections are fitted under it.
//!
//! Each request carries `ConnectInfo<SocketAddr>` as axum's own serve gives
//! it. On shutdown, connections finish their request in flight and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What a connection beyond the cap is told: Avisa's error shape.
fn busy() -> Vec<u8> {
    let body = r#"{"error":{"code":"busy","message":"too many connections; try again in 1 s"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Kept beyond `max_connections` for presses, cancels, the webhooks
    /// and the health checks ([`reserved_route`]).
    pub reserved_connections: usize,
    pub connections_per_address: usize,
    /// Exempt from the per-address cap (every client comes through it).
    pub trusted_proxy: Option<IpAddr>,
    /// Exempt too: the consulates' offices, many staff behind one address.
    pub console_addresses: Vec<IpAddr>,
}

/// How long a connection from the reserve may take to send its headers:
/// a socket that says nothing gives its place back at once.
const RESERVED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections at most whose request line is read at once, the common pool
/// full, before the reserve may take them.
const DOORS: usize = 512;

/// How long the door waits for a request line.
const DOOR_WAIT: Duration = Duration::from_millis(500);

/// Whether the request line on `stream` (peeked, not consumed) asks for what
/// the reserve serves, within [`DOOR_WAIT`].
async fn request_line_reserved(stream: &TcpStream) -> bool {
    let deadline = tokio::time::Instant::now() + DOOR_WAIT;
    let mut buf = [0u8; 256];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]);
            let mut parts = line.split(' ');
            let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
                return false;
            };
            let path = target.split('?').next().unwrap_or("");
            return hyper::Method::from_bytes(method.as_bytes())
                .is_ok_and(|m| reserved_route(&m, path));
        }
        if n == buf.len() || tokio::time::Instant::now() >= deadline {
            return false;
        }
        // Part of the line so far: look again in a moment.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a connection from the reserve may ask: what saves a person.
pub fn reserved_route(method: &hyper::Method, path: &str) -> bool {
    let press = method == hyper::Method::POST
        && (path == "/api/v1/alerts"
            || path
                .strip_prefix("/api/v1/alerts/")
                .is_some_and(|rest| rest.ends_with("/cancel") && rest.matches('/').count() == 1));
    press || path.starts_with("/hooks/") || path == "/healthz" || path == "/readyz"
}

/// The answer to anything else on a reserved connection.
fn busy_response() -> hyper::Response<axum::body::Body> {
    let body = r#"{"error":{"code":"busy","message":"too many connections; try again in 1 s"}}"#;
    let mut response = hyper::Response::new(axum::body::Body::from(body));
    *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    for (k, v) in [
        ("content-type", "application/json"),
        ("retry-after", "1"),
        ("cache-control", "no-store"),
        ("connection", "close"),
    ] {
        headers.insert(k, hyper::header::HeaderValue::from_static(v));
    }
    response
}

/// Raises the soft limit of open files to the hard one (capped at a
/// million) and gives the soft limit now in force, if known.
pub fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let want = now.maximum.unwrap_or(1 << 20).min(1 << 20);
    if now.current.is_some_and(|c| c < want)
        && let Err(e) = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: now.maximum,
            },
        )
    {
        tracing::warn!(error = %e, "cannot raise the open-files limit");
    }
    getrlimit(Resource::Nofile).current
}

/// Files kept for what is not a connection: the database, the gateways,
/// the log, the data directory.
const FILES_KEPT: usize = 128;

/// The connections to serve under an open-files limit of `files`: the
/// configured ones if they fit (with the reserve and [`FILES_KEPT`]), else
/// as many as do, with a warning.
pub fn fit_connections(max_connections: usize, reserved: usize, files: Option<u64>) -> usize {
    let Some(files) = files.and_then(|f| usize::try_from(f).ok()) else {
        return max_connections;
    };
    let room = files.saturating_sub(reserved + FILES_KEPT);
    if room >= max_connections {
        return max_connections;
    }
    let fitted = room.max(16);
    tracing::warn!(
        open_files = files,
        configured = max_connections,
        serving = fitted,
        "the open-files limit is low for limits.max_connections: serving fewer (raise LimitNOFILE or ulimit -n)"
    );
    fitted
}

/// Open connections per address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address until dropped.
struct Slot {
    table: Arc<PerAddress>,
    addr: Option<IpAddr>,
}

impl PerAddress {
    fn take(self: &Arc<Self>, addr: IpAddr, max: usize) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(addr).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: self.clone(),
            addr: Some(addr),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(addr) = self.addr {
            let mut map = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&addr);
                }
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// connections finish what they are doing.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // HTTP/1 only (what axum is built with here): an "auto" builder would
    // first wait, without a deadline, for bytes to tell HTTP/1 from HTTP/2.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let mut reserved_builder = http1::Builder::new();
    reserved_builder
        .timer(TokioTimer::new())
        .header_read_timeout(RESERVED_HEADER_TIMEOUT.min(limits.header_timeout))
        .keep_alive(false);
    let reserved_builder = Arc::new(reserved_builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.reserved_connections));
    // Connections whose request line is being read before the reserve may
    // take them (the common pool full): bounded, and each for a moment.
    let doors = Arc::new(Semaphore::new(DOORS));
    let (admit_tx, mut admitted) =
        tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, Slot)>(DOORS);
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote, door_passed) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => (stream, remote, None),
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a
                    // moment rather than spin.
                    metrics::counter!("avisa_accept_errors_total").increment(1);
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some((stream, remote, slot)) = admitted.recv() => (stream, remote, Some(slot)),
            () = &mut shutdown => break,
        };
        let (permit, slot, reserved) = match door_passed {
            // Its request line is a press, a cancel, a webhook or a health
            // check: a place in the reserve, if one is free.
            Some(slot) => match reserve.clone().try_acquire_owned() {
                Ok(permit) => (permit, slot, true),
                Err(_) => {
                    metrics::counter!("avisa_connections_refused_total").increment(1);
                    tokio::spawn(refuse(stream));
                    continue;
                }
            },
            None => {
                let ip = remote.ip();
                let slot =
                    if limits.trusted_proxy == Some(ip) || limits.console_addresses.contains(&ip) {
                        Some(Slot {
                            table: per_address.clone(),
                            addr: None,
                        })
                    } else {
                        per_address.take(ip, limits.connections_per_address)
                    };
                let Some(slot) = slot else {
                    metrics::counter!("avisa_connections_refused_total").increment(1);
                    tokio::spawn(refuse(stream));
                    continue;
                };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => (permit, slot, false),
                    // The common pool is full: the reserve serves only what
                    // saves a person, so the request line decides, read at
                    // the door before any place is given (an idle socket
                    // never holds one).
                    Err(_) => {
                        let Ok(door) = doors.clone().try_acquire_owned() else {
                            metrics::counter!("avisa_connections_refused_total").increment(1);
                            tokio::spawn(refuse(stream));
                            continue;
                        };
                        let admit = admit_tx.clone();
                        tokio::spawn(async move {
                            let passes = request_line_reserved(&stream).await;
                            drop(door);
                            if passes {
                                let _ = admit.send((stream, remote, slot)).await;
                            } else {
                                metrics::counter!("avisa_connections_refused_total").increment(1);
                                refuse(stream).await;
                            }
                        });
                        continue;
                    }
                }
            }
        };
        if reserved {
            metrics::counter!("avisa_connections_reserved_total").increment(1);
        }
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                let router = router.clone();
                let refused = reserved && !reserved_route(req.method(), req.uri().path());
                async move {
                    if refused {
                        metrics::counter!("avisa_reserved_refused_total").increment(1);
                        return Ok::<_, Infallible>(busy_response());
                    }
                    Ok::<_, Infallible>(
                        router
                            .oneshot(req.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|e| match e {}),
                    )
                }
            }
        });
        let conn = if reserved {
            &reserved_builder
        } else {
            &builder
        }
        .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop((permit, slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection beyond the cap: its request is read first (for a
/// moment at most), so the client sees an answer to it, not a stray one.
async fn refuse(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(&busy()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_open_files() {
        // Room enough: as configured.
        assert_eq!(fit_connections(900, 64, Some(65_536)), 900);
        assert_eq!(fit_connections(900, 64, None), 900);
        // The usual 1,024: fewer, with the reserve and the files kept.
        assert_eq!(fit_connections(900, 64, Some(1024)), 1024 - 64 - FILES_KEPT);
        // Never none.
        assert_eq!(fit_connections(900, 64, Some(100)), 16);
    }

    #[test]
    fn the_reserve_serves_what_saves_a_person() {
        use hyper::Method;
        for (m, p) in [
            (Method::POST, "/api/v1/alerts"),
            (
                Method::POST,
                "/api/v1/alerts/0190c0de-0000-7000-8000-000000000000/cancel",
            ),
            (Method::POST, "/hooks/twilio/inbound"),
            (Method::GET, "/hooks/kannel/inbound"),
            (Method::GET, "/healthz"),
        ] {
            assert!(reserved_route(&m, p), "{m} {p}");
        }
        for (m, p) in [
            (Method::GET, "/api/v1/alerts"),
            (Method::GET, "/api/v1/contacts"),
            (Method::POST, "/api/v1/alerts/x/locations"),
            (Method::POST, "/api/v1/alerts/x/y/cancel"),
            (Method::POST, "/api/v1/devices"),
        ] {
            assert!(!reserved_route(&m, p), "{m} {p}");
        }
    }
}
