//! The background tasks under their supervisor: a dispatcher that dies is
//! seen by `/readyz` and started again, and presses still go out.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

async fn wait_ready(app: &TestApp, want: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {want}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_killed_dispatcher_turns_readyz_red_then_is_restarted_and_sends() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    app.wait_sms(1).await; // the verification code
    wait_ready(&app, StatusCode::OK).await;

    assert!(app.tasks.kill("dispatcher"), "the dispatcher runs");
    wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    wait_ready(&app, StatusCode::OK).await;

    // The restarted dispatcher sends the next press's messages.
    let (status, body) = press(&app, &token, json!({"idempotency_key": "after-crash"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let lines = app.wait_sms(2).await;
    assert_eq!(
        lines[1]["to"], "+12135550100",
        "the person's own confirmation"
    );
}

#[tokio::test]
async fn a_killed_writer_is_restarted_and_presses_are_accepted() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    assert!(app.tasks.kill("writer"));
    wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    wait_ready(&app, StatusCode::OK).await;
    let (status, body) = press(&app, &token, json!({"idempotency_key": "writer-back"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// A phone's live stream left open does not hold the graceful stop open (a
/// rolling restart would otherwise end in SIGKILL).
#[tokio::test]
async fn a_graceful_stop_ends_open_live_streams() {
    let mut app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (status, body) = press(&app, &token, json!({"idempotency_key": "stream-open"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["alert_id"].as_str().expect("id");
    let mut stream = app
        .client
        .get(format!("{}/api/v1/alerts/{id}/events", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let first = stream.chunk().await.expect("a first event");
    assert!(first.is_some());
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stopped with a stream open");
}

/// Every metric the shipped alerting rules (`packaging/prometheus/`) and
/// dashboard (`packaging/grafana/`) watch is one the server exports: a
/// renamed metric would leave an operator's alert silent. Exported once it
/// has a value: after a press, the queue-age job's first round and a task's
/// restart.
#[tokio::test]
async fn the_shipped_rules_and_dashboard_watch_metrics_the_server_exports() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (status, body) = press(
        &app,
        &token,
        json!({"idempotency_key": "metrics-press-1", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(app.tasks.kill("queue-age"));
    // Restarted (a beat), then its first round (another).
    app.rounds("queue-age", 2).await;
    let metrics = app.text("/metrics").await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    let mut watched = std::collections::BTreeSet::new();
    for file in ["prometheus/avisa.rules.yml", "grafana/avisa.json"] {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let mut rest = text.as_str();
        while let Some(i) = rest.find("avisa_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            // A histogram is watched by its buckets, sums and counts.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            watched.insert(base);
        }
    }
    assert!(watched.len() >= 8, "{watched:?}");
    let missing: Vec<&String> = watched
        .iter()
        .filter(|name| !metrics.lines().any(|l| l.starts_with(name.as_str())))
        .collect();
    assert!(missing.is_empty(), "watched but not exported: {missing:?}");
}
