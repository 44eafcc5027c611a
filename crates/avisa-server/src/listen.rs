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
//!
//! Each request carries `ConnectInfo<SocketAddr>` as axum's own serve gives
//! it. On shutdown, connections finish their request in flight and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
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
    pub connections_per_address: usize,
    /// Exempt from the per-address cap (every client comes through it).
    pub trusted_proxy: Option<IpAddr>,
    /// Exempt too: the consulates' offices, many staff behind one address.
    pub console_addresses: Vec<IpAddr>,
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
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a
                    // moment rather than spin.
                    metrics::counter!("avisa_accept_errors_total").increment(1);
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = remote.ip();
        let slot = if limits.trusted_proxy == Some(ip) || limits.console_addresses.contains(&ip) {
            Some(Slot {
                table: per_address.clone(),
                addr: None,
            })
        } else {
            per_address.take(ip, limits.connections_per_address)
        };
        let (Ok(permit), Some(slot)) = (permits.clone().try_acquire_owned(), slot) else {
            metrics::counter!("avisa_connections_refused_total").increment(1);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                let router = router.clone();
                async move {
                    Ok::<_, Infallible>(
                        router
                            .oneshot(req.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|e| match e {}),
                    )
                }
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
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
