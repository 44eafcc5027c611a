//! The person's PIN guard: one lockout behind every door that takes the PIN,
//! and PIN checks that staff logins cannot delay.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds")
}

/// A profile change that sets a new PIN, proving the current one.
fn pin_change(current: &str, new: &str) -> Value {
    let mut body = profile_body();
    body["cancel_pin"] = json!(new);
    body["current_pin"] = json!(current);
    body
}

/// A PIN change by the device's holder, with the device's unlock (without
/// one it would not reach the PIN check: 403 `pin_required`).
async fn put_profile(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client
        .put(format!("{}/api/v1/profile", app.base))
        .bearer_auth(token)
        .header("x-avisa-unlock", app.unlock_of(token).expect("unlock"))
        .json(&body)
        .send()
        .await
        .expect("PUT /profile")
}

async fn cancel(app: &TestApp, token: &str, id: &str, pin: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/alerts/{id}/cancel", app.base))
        .bearer_auth(token)
        .json(&json!({"pin": pin}))
        .send()
        .await
        .expect("cancel")
}

async fn a_pin_locked_through_cancel_is_locked_for_a_profile_change(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    let (status, alert) = press(&app, &token, json!({"idempotency_key": "pin-lock-one"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();

    // Five wrong PINs through cancel lock the PIN.
    for _ in 0..4 {
        assert_eq!(
            cancel(&app, &token, &id, "1111").await.status(),
            StatusCode::FORBIDDEN
        );
    }
    let locked = cancel(&app, &token, &id, "1111").await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);

    // The right current PIN does not change the PIN while it is locked, and
    // the answer says how long is left.
    let resp = put_profile(&app, &token, pin_change("4821", "9999")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&resp);
    assert!(
        (890..=900).contains(&wait),
        "the real remaining time: {wait}"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(error_code(&body), "pin_locked");
    // Nor do the PIN check and "delete my data" let anyone through.
    let (status, body) = app.check_pin(&token, json!({"pin": "4821"})).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "pin_locked")
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/profile",
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Nothing changed: the old PIN is still the PIN once the lock is over
    // (the new one would be refused by the same guard), and the alert is
    // still active.
    let (_, still) = app.alert(&token, &id).await;
    assert_eq!(still["state"], "active");
    let (status, profile) = app.profile(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["pin_set"], true);
}

async fn wrong_current_pins_in_the_profile_lock_cancel(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    let (_, alert) = press(&app, &token, json!({"idempotency_key": "pin-lock-two"})).await;
    let id = alert["alert_id"].as_str().expect("id").to_string();

    // A PIN change needs the current PIN; each wrong one counts.
    for _ in 0..4 {
        let resp = put_profile(&app, &token, pin_change("0000", "5555")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(error_code(&body), "pin_incorrect");
    }
    let resp = put_profile(&app, &token, pin_change("0000", "5555")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    // Cancel is locked too, even with the right PIN.
    let resp = cancel(&app, &token, &id, "4821").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&resp) > 800);
    let (_, still) = app.alert(&token, &id).await;
    assert_eq!(still["state"], "active");
}

on_both_backends!(
    a_pin_locked_through_cancel_is_locked_for_a_profile_change,
    wrong_current_pins_in_the_profile_lock_cancel,
);

/// 200 console logins with unknown usernames at once (each hashed against a
/// dummy, so timing does not tell which usernames exist) while the person
/// checks their PIN: the PIN check is answered, not refused as busy.
#[tokio::test]
async fn a_flood_of_staff_logins_does_not_delay_the_persons_pin_check() {
    // Every request comes from 127.0.0.1 here: lift the per-address cap,
    // which would otherwise (rightly) refuse the flood's connections.
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.connections_per_address = 1000;
    // Each login as if from its own address, so the per-address login
    // throttle lets every one reach the hashing pool.
    config.limits.trusted_proxy = Some("127.0.0.1".parse().expect("ip"));
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    let check = || async {
        let started = Instant::now();
        let (status, body) = app.check_pin(&token, json!({"pin": "4821"})).await;
        assert!(status.is_success(), "{status} {body}");
        started.elapsed()
    };
    // Warm up: the first hash pays for the hashing threads and the pages.
    check().await;

    let flood: Vec<_> = (0..200)
        .map(|i| {
            let client = app.client.clone();
            let url = format!("{}/api/v1/console/login", app.base);
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("x-forwarded-for", format!("198.51.100.{i}"))
                    .json(&json!({"username": format!("nobody{i}"), "password": "not a password at all"}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    // Let the flood reach the server before the person checks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = check().await;
    eprintln!("the PIN check during the flood took {took:?}");
    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.expect("join").expect("login answered"));
    }
    // No timing threshold here (2 shared cores make any bound flaky): that
    // the person's pool never waits behind the staff's is proved
    // deterministically in `hasher::tests`; here, the check is answered
    // during the flood, and every login is answered too.
    // Every login was answered: refused as unknown (401), or told to come
    // back (503 with Retry-After) once the staff queue was full.
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE)
    );
    assert!(statuses.contains(&StatusCode::SERVICE_UNAVAILABLE));
}
