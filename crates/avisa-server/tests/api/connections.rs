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

/// A body declared larger than the limit (here 2^63 - 1 bytes, with one
/// sent) is refused with 413 at once, without waiting for it (the body
/// timeout is a minute here: an answer before it is the refusal's).
#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.body_timeout = Duration::from_secs(60);
    let app = TestApp::start(config, dir).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    for path in [
        "/api/v1/alerts",
        "/hooks/twilio/status",
        "/api/v1/phone/read",
    ] {
        let mut huge = TcpStream::connect(&addr).await.expect("connect");
        huge.write_all(
            format!("POST {path} HTTP/1.1\r\nhost: avisa\r\ncontent-type: application/json\r\ncontent-length: 9223372036854775807\r\n\r\n{{").as_bytes(),
        )
        .await
        .expect("write");
        let answer = read_to_close(&mut huge, Duration::from_secs(30))
            .await
            .expect("answered and closed long before the body timeout");
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("body_too_large"), "{answer}");
    }
}

/// Bodies trickled a byte at a time (each well within any per-read
/// timeout) are cut with 408 once they fall below `min_body_rate`, long
/// before `body_timeout`; a press meanwhile is answered.
#[tokio::test]
async fn a_trickled_body_is_cut_and_a_press_goes_meanwhile() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.body_timeout = Duration::from_secs(60);
    config.limits.min_body_rate = 1024;
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut trickles = Vec::new();
    for i in 0..8 {
        let addr = addr.clone();
        trickles.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            s.write_all(
                format!("POST /api/v1/phone/read HTTP/1.1\r\nhost: avisa\r\ncontent-type: application/json\r\ncontent-length: 2000\r\n\r\n{{\"phone\": \"{i}").as_bytes(),
            )
            .await
            .expect("write");
            // A byte every 300 ms until the server answers (or 20 s).
            let mut out = Vec::new();
            let mut buf = [0u8; 1024];
            for _ in 0..66 {
                if s.write_all(b"1").await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
                if !out.is_empty() {
                    break;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = press(
        &app,
        &token,
        serde_json::json!({"idempotency_key": "press-amid-trickles"}),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    for t in trickles {
        let answer = t.await.expect("trickle");
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "cut for its rate: {answer:?}"
        );
    }
}

/// A consulate's office behind one address (`console_addresses`) is not
/// held to the per-address cap that holds everyone else.
#[tokio::test]
async fn a_consulates_address_is_not_capped() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.connections_per_address = 4;
    config.limits.console_addresses = vec!["127.0.0.1".parse().expect("ip")];
    let app = TestApp::start(config, dir).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut one_more = TcpStream::connect(&addr).await.expect("connect");
    one_more
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: avisa\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut one_more, Duration::from_secs(10))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
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

/// Live streams are capped per phone and per console session: one more is
/// 429 `too_many_streams`, and a closed stream gives its place back.
async fn live_streams_are_capped_per_phone_and_per_session(backend: &str) {
    let Some(app) = crate::console::staffed_app(backend, |c| {
        c.limits.streams_per_device = 2;
        c.limits.streams_per_session = 2;
    })
    .await
    else {
        return;
    };
    let token = app.person("+12135550100").await;
    let (status, alert) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(serde_json::json!({"idempotency_key": "streams-cap-1"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{alert}");
    let url = format!(
        "{}/api/v1/alerts/{}/events",
        app.base,
        alert["alert_id"].as_str().expect("id")
    );
    let open_phone = || app.client.get(&url).bearer_auth(&token).send();
    let first = open_phone().await.expect("stream");
    let _second = open_phone().await.expect("stream");
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let third = open_phone().await.expect("stream");
    assert_eq!(third.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = third.json().await.expect("json");
    assert_eq!(error_code(&body), "too_many_streams");
    // Closing one gives its place back (the server notices the closed
    // connection at its next write or poll).
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = open_phone().await.expect("stream");
        if again.status() == reqwest::StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let la = crate::console::login(&app, "la.operator").await;
    let open_console = || {
        app.client
            .get(format!("{}/api/v1/console/events", app.base))
            .header("cookie", &la.cookie)
            .send()
    };
    let _a = open_console().await.expect("stream");
    let _b = open_console().await.expect("stream");
    let c = open_console().await.expect("stream");
    assert_eq!(c.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    // Another session of the same account has its own places.
    let other = crate::console::login(&app, "la.operator").await;
    let d = app
        .client
        .get(format!("{}/api/v1/console/events", app.base))
        .header("cookie", &other.cookie)
        .send()
        .await
        .expect("stream");
    assert_eq!(d.status(), reqwest::StatusCode::OK);
}

on_both_backends!(live_streams_are_capped_per_phone_and_per_session);

/// When the common pool is full (here held by live streams), a press and a
/// cancel still find a connection in the reserve; anything else there is
/// answered 503 busy at once.
#[tokio::test]
async fn a_press_finds_the_reserve_when_the_pool_is_full() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.max_connections = 3;
    config.limits.reserved_connections = 2;
    config.limits.header_timeout = Duration::from_secs(1);
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    let (s, first) = press(
        &app,
        &token,
        serde_json::json!({"idempotency_key": "reserve-0001"}),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::ACCEPTED, "{first}");
    let id = first["alert_id"].as_str().expect("id").to_string();
    let unlock = app.unlock_of(&token).expect("unlock");
    // The test client's kept-alive connections close after the header
    // timeout; then three live streams hold the whole pool.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    };
    let mut streams = Vec::new();
    for _ in 0..3 {
        let r = fresh()
            .get(format!("{}/api/v1/alerts/{id}/events", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("stream");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        streams.push(r);
    }
    // Anything else on the reserve: 503 busy.
    let r = fresh()
        .get(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(&token)
        .header("x-avisa-unlock", &unlock)
        .send()
        .await
        .expect("contacts");
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    // A press, then its cancel: served.
    let r = fresh()
        .post(format!("{}/api/v1/alerts", app.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"idempotency_key": "reserve-0002"}))
        .send()
        .await
        .expect("press");
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let second: serde_json::Value = r.json().await.expect("json");
    let r = fresh()
        .post(format!(
            "{}/api/v1/alerts/{}/cancel",
            app.base,
            second["alert_id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({"pin": "4821"}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    drop(streams);
}
