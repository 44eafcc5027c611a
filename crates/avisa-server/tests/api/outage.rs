//! The database goes away: presses are answered 503 with Retry-After within
//! 2 s (the app sends them again with their key), nothing accepted is lost,
//! and when it returns presses are taken again with no restart. PostgreSQL
//! is reached through a proxy the test switches off, as an outage would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A TCP proxy to PostgreSQL that can drop every connection and refuse new
/// ones until switched back on.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    /// Connections stay open but nothing moves: a database that hangs.
    stalled: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let stall = stalled.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let (flag, stall, upstream) = (flag.clone(), stall.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    tokio::pin!(copy);
                    // Cut when the switch goes off, as a dead server would.
                    loop {
                        if stall.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                                if !flag.load(Ordering::SeqCst) {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy { port, up, stalled }
    }

    /// A proxy to the database of `url` (postgres://user@host:port/db), and
    /// the same URL through it.
    async fn in_front_of(url: &str) -> (Proxy, String) {
        let (head, db) = url.rsplit_once('/').expect("a database name");
        let (creds, hostport) = head.rsplit_once('@').unwrap_or((
            "postgres://postgres",
            head.trim_start_matches("postgres://"),
        ));
        let proxy = Proxy::start(hostport.to_string()).await;
        let through = format!("{creds}@127.0.0.1:{}/{db}", proxy.port);
        (proxy, through)
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn presses_while_the_database_is_away_get_503_and_go_when_it_returns() {
    let Some(url) = avisa_store::testing::fresh_postgres_url().await else {
        return;
    };
    let (proxy, through) = Proxy::in_front_of(&url).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.database_url = through.into();
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    let press = |key: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let started = Instant::now();
            let resp = app
                .client
                .post(format!("{}/api/v1/alerts", app.base))
                .bearer_auth(&token)
                .json(&json!({"idempotency_key": key}))
                .send()
                .await
                .expect("press");
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (resp.status(), retry, started.elapsed())
        }
    };
    let (s, _, _) = press("outage-before-0001").await;
    assert_eq!(s, StatusCode::ACCEPTED);

    proxy.set(false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, retry, took) = press("outage-during-0001").await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "refused while the database is away"
    );
    assert!(retry.is_some(), "with Retry-After");
    assert!(
        took <= Duration::from_millis(2500),
        "answered within 2 s: {took:?}"
    );
    // The load balancer's check says so within a second.
    let asked = Instant::now();
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        asked.elapsed() <= Duration::from_millis(1500),
        "/readyz within 1 s: {:?}",
        asked.elapsed()
    );

    proxy.set(true);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, _, _) = press("outage-during-0001").await;
        if s == StatusCode::ACCEPTED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never taken after the database returned: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both presses stand, once each.
    let (s, body) = app
        .call(reqwest::Method::GET, "/api/v1/history", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let n = body["alerts"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 2, "{body}");
}

/// The database goes away while a round is at the gateway: what the
/// gateway took is recorded as sent when the database returns, not sent
/// again when the lease runs out.
#[tokio::test]
async fn a_round_sent_during_an_outage_is_recorded_not_resent() {
    use avisa_testkit::{FakeTwilio, Reply};
    avisa_sms::http::init_tls();
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) =
        crate::gateways::twilio_config(&dir, "postgres", &fake, &["twilio"]).await
    else {
        return;
    };
    let url = secrecy::ExposeSecret::expose_secret(&config.database_url).to_string();
    let (proxy, through) = Proxy::in_front_of(&url).await;
    config.database_url = through.into();
    let app = TestApp::start(config, dir).await;
    let token = crate::gateways::person_via_twilio(&app, &fake, "+12135550100", 2).await;

    // The provider takes each message at once and answers 2 s later.
    fake.set_default(Reply::Slow(Duration::from_secs(2)));
    let (s, alert) = press(&app, &token, json!({"idempotency_key": "outage-round"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let ids: Vec<String> = alert["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    let taken = |fake: &FakeTwilio, id: &String| {
        fake.accepted()
            .iter()
            .filter(|m| m.reference.as_ref() == Some(id))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ids.iter().all(|id| taken(&fake, id) == 1) {
        assert!(Instant::now() < deadline, "the gateway never took them");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Away while the answers come back.
    proxy.set(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    fake.set_default(Reply::Created);
    proxy.set(true);

    // Recorded at once, not after the 30 s lease (and then asked of the
    // gateway, or sent again where it cannot be asked).
    let id = alert["alert_id"].as_str().expect("id");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, view) = app
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/alerts/{id}"),
                Some(&token),
                None,
            )
            .await;
        let statuses: Vec<&str> = view["recipients"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["status"].as_str()).collect())
            .unwrap_or_default();
        if s == StatusCode::OK
            && statuses.len() == ids.len()
            && statuses.iter().all(|s| *s == "sent")
        {
            break;
        }
        assert!(Instant::now() < deadline, "never recorded: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing went twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in &ids {
        assert_eq!(taken(&fake, id), 1, "{id} sent twice");
    }
}

/// A database that hangs rather than refuses (connections open, nothing
/// answered): a press is still answered, 503 with Retry-After, within
/// `limits.press_deadline`; once the database moves again the app's retry
/// with the same key makes the one alert.
#[tokio::test]
async fn a_press_while_the_database_hangs_is_answered_by_its_deadline() {
    let Some(url) = avisa_store::testing::fresh_postgres_url().await else {
        return;
    };
    let (proxy, through) = Proxy::in_front_of(&url).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.database_url = through.into();
    config.limits.press_deadline = Duration::from_secs(1);
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    proxy.stalled.store(true, Ordering::SeqCst);
    // Every connection's copy loop sees the switch at its next tick (50 ms).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let resp = app
        .client
        .post(format!("{}/api/v1/alerts", app.base))
        .bearer_auth(&token)
        .json(&json!({"idempotency_key": "hanging-0001"}))
        .send()
        .await
        .expect("press");
    let took = started.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(
        took < Duration::from_millis(1800),
        "answered by its deadline: {took:?}"
    );
    proxy.stalled.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, _) = press(&app, &token, json!({"idempotency_key": "hanging-0001"})).await;
        if s == StatusCode::ACCEPTED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never taken once it moved again: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = app
        .call(reqwest::Method::GET, "/api/v1/history", Some(&token), None)
        .await;
    assert_eq!(body["alerts"].as_array().map_or(0, Vec::len), 1, "{body}");
}
