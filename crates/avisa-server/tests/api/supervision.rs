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
