//! Console logins under attack: failures are throttled per client address
//! with growing delays, never by locking the account, so the owner logs in
//! from another address during an attack; unknown and known usernames are
//! answered alike — on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::{PASSWORD, staffed_app};
use crate::support::*;

/// A login as if from `addr` (the server trusts 127.0.0.1 as its proxy):
/// (status, Retry-After, body).
async fn login_from(
    app: &TestApp,
    addr: &str,
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>, Value) {
    let resp = app
        .client
        .post(format!("{}/api/v1/console/login", app.base))
        .header("x-forwarded-for", addr)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login");
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

async fn logins_are_throttled_per_address_never_locked(backend: &str) {
    let Some(app) = staffed_app(backend, |c| {
        c.limits.trusted_proxy = Some("127.0.0.1".parse().expect("ip"));
    })
    .await
    else {
        return;
    };
    let attacker = "203.0.113.9";
    // Five failures, known and unknown usernames alike: the same 401.
    for user in ["la.super", "ghost", "la.super", "nobody", "la.super"] {
        let (status, _, body) = login_from(&app, attacker, user, "guess guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_code(&body), "login_failed");
    }
    // The next try waits, whatever it carries — the right password too —
    // and a known and an unknown username hear the same.
    let (status, retry, known) = login_from(&app, attacker, "la.super", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry, Some(1), "1 s after the fifth failure");
    assert_eq!(error_code(&known), "login_throttled");
    let (status, _, unknown) = login_from(&app, attacker, "ghost", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(known, unknown, "no hint whether the username exists");

    // The account is not locked: its owner, elsewhere, logs in.
    let (status, _, me) = login_from(&app, "198.51.100.4", "la.super", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "la.super");

    // The delay grows: after the wait, one more failure, then 2 s.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, _) = login_from(&app, attacker, "la.super", "guess again").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, retry, _) = login_from(&app, attacker, "la.super", "guess again").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry, Some(2), "the delay doubled");

    // 20 parallel guesses from a fresh address: at most the 5 free ones are
    // checked; the rest wait.
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                login_from(&app, "192.0.2.50", "la.operator", &format!("guess {i}")).await
            })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        let (status, _, body) = t.await.expect("task");
        match status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(error_code(&body), "login_throttled"),
            other => panic!("{other}: {body}"),
        }
    }
    assert!((1..=5).contains(&checked), "{checked} guesses were checked");
    // Three officers behind one office's address log in at once: none
    // failed, so none is throttled (each waits its turn, a password check).
    let tasks: Vec<_> = ["la.super", "la.operator", "chi.super"]
        .into_iter()
        .map(|user| {
            let app = app.clone();
            tokio::spawn(async move { login_from(&app, "198.51.100.77", user, PASSWORD).await })
        })
        .collect();
    for t in tasks {
        let (status, _, body) = t.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A success from an address starts its count again.
    let (status, _, _) = login_from(&app, "198.51.100.4", "la.operator", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

on_both_backends!(logins_are_throttled_per_address_never_locked);
