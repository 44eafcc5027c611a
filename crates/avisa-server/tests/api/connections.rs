//! Connections that never finish cannot hold the server: silent or trickled
//! headers and idle kept-alive connections are closed after the header
//! timeout, slow bodies after the body timeout, and one address's flood of
//! sockets is answered 503 beyond its cap while the server stays up.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the peer closes (or `within` passes: then None).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn connections_that_never_finish_are_closed_and_capped() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.header_timeout = Duration::from_secs(1);
    config.limits.body_timeout = Duration::from_secs(1);
    config.limits.connections_per_address = 20;
    let app = TestApp::start(config, dir).await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // Headers that never end: closed (generous bound: a liveness check).
    let mut trickle = TcpStream::connect(&addr).await.expect("connect");
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: avisa\r\n")
        .await
        .expect("write");
    assert!(
        read_to_close(&mut trickle, Duration::from_secs(10))
            .await
            .is_some(),
        "a connection whose headers never end is closed"
    );

    // An idle kept-alive connection: answered, then closed.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: avisa\r\n\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut idle, Duration::from_secs(10))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body that never arrives: the request fails and nothing waits for it.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(
        b"POST /api/v1/phone/read HTTP/1.1\r\nhost: avisa\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"phone\":",
    )
    .await
    .expect("write");
    let answer = read_to_close(&mut slow, Duration::from_secs(10))
        .await
        .expect("a slow body is not waited for");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    // One address's flood of silent sockets: the cap answers 503 in the
    // error shape; once they time out, the server answers again.
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut one_more = TcpStream::connect(&addr).await.expect("connect");
    let _ = one_more
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: avisa\r\n\r\n")
        .await;
    let refused = read_to_close(&mut one_more, Duration::from_secs(5))
        .await
        .expect("answered at once");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.contains(r#""code":"busy""#), "{refused}");
    let mut healthy = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = app.client.get(format!("{}/healthz", app.base)).send().await
            && r.status().is_success()
        {
            healthy = true;
            break;
        }
    }
    assert!(
        healthy,
        "the silent sockets were closed and the server answers"
    );
    drop(flood);
}
