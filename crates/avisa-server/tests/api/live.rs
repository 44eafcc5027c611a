//! Live location while an alert is active: the trail's points, the
//! "nueva ubicación" SMS to contacts who chose them (spaced, capped), the
//! flag on an impossible jump, and the stops (cancel, resolved, hard stop)
//! — on both backends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::{login, staffed_app};
use crate::support::*;

const SISTER: &str = "+12135557000";
const LAWYER: &str = "+12135557001";

async fn point(app: &TestApp, token: &str, id: &str, lat: f64, lon: f64) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/alerts/{id}/locations"),
        Some(token),
        Some(json!({"lat": lat, "lon": lon, "accuracy_m": 15})),
    )
    .await
}

fn updates_to(app: &TestApp, phone: &str) -> Vec<String> {
    app.sms_lines()
        .into_iter()
        .filter(|l| l["to"] == phone)
        .filter_map(|l| l["body"].as_str().map(str::to_string))
        .filter(|b| b.contains("nueva ubicacion") || b.contains("new location"))
        .collect()
}

async fn live_location_reaches_the_console_and_chosen_contacts(backend: &str) {
    let Some(app) = staffed_app(backend, |c| {
        c.alerts.trail_every = Duration::from_millis(1);
        c.alerts.location_update_every = Duration::from_millis(400);
        c.alerts.live_location_for = Duration::from_secs(6);
    })
    .await
    else {
        return;
    };
    let token = app.person("+12135550100").await;
    for (name, phone, updates) in [("Lupita", SISTER, true), ("Lic. Torres", LAWYER, false)] {
        let (s, c) = app
            .add_contact(&token, json!({"name": name, "phone": phone, "message": "Me detuvieron.", "location_updates": updates}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        assert_eq!(c["location_updates"], updates);
    }
    let (s, alert) = press(&app, &token, json!({"idempotency_key": "live-press-1", "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 15}})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();

    // 500 m north: stored, and the sister (who chose updates) is told.
    let (s, body) = point(&app, &token, &id, 34.0550, -118.2551).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let update = app
        .wait_sms_to(SISTER, |b| b.contains("nueva ubicacion"))
        .await;
    let text = update["body"].as_str().expect("body");
    assert!(
        text.contains("María Pérez") && text.contains("mlat=34.05500&mlon=-118.25510"),
        "{text}"
    );
    // Again at once: a point, but no second SMS within the spacing.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (s, _) = point(&app, &token, &id, 34.0600, -118.2551).await;
    assert_eq!(s, StatusCode::CREATED);
    // Spaced out: two more, then the cap (3 per alert) holds.
    for lat in [34.0650, 34.0700, 34.0750, 34.0800] {
        tokio::time::sleep(Duration::from_millis(450)).await;
        let (s, _) = point(&app, &token, &id, lat, -118.2551).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        updates_to(&app, SISTER).len(),
        3,
        "{:?}",
        updates_to(&app, SISTER)
    );
    assert!(
        updates_to(&app, LAWYER).is_empty(),
        "the lawyer did not choose updates"
    );

    // A jump to Chicago a moment later: kept, and flagged for the console.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (s, _) = point(&app, &token, &id, 41.8781, -87.6298).await;
    assert_eq!(s, StatusCode::CREATED, "kept, never dropped");
    let console = login(&app, "la.operator").await;
    let (s, detail) = console.case(&id).await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    let trail = detail["trail"].as_array().expect("trail");
    assert_eq!(trail.len(), 8, "the first point and seven more");
    assert_eq!(trail.iter().filter(|p| p["implausible"] == true).count(), 1);
    assert_eq!(trail.last().expect("last")["implausible"], true);

    // Closed on a guess ("false alarm") while the phone still moves: the
    // next point reopens the case, visibly, on its timeline.
    let (s, b) = console
        .resolve(&id, json!({"outcome": "false_alarm"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (s, _) = point(&app, &token, &id, 34.0510, -118.2551).await;
    assert_eq!(s, StatusCode::CREATED, "a guess does not end the sharing");
    let (_, detail) = console.case(&id).await;
    assert_ne!(detail["case"]["state"], "resolved", "{detail}");
    let last = detail["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .expect("timeline");
    assert_eq!(
        (last["kind"].as_str(), last["detail"].as_str()),
        (Some("reopened"), Some("new_location"))
    );
    // Resolved knowing the person safe: no more points.
    let (s, b) = console
        .resolve(&id, json!({"outcome": "person_safe"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, body) = point(&app, &token, &id, 34.0505, -118.2551).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::CONFLICT, "sharing_ended")
    );

    // A second alert: cancelled, it takes no point; and queued updates are
    // withdrawn with its messages.
    let (_, second) = press(
        &app,
        &token,
        json!({"idempotency_key": "live-press-2", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    let second = second["alert_id"].as_str().expect("id").to_string();
    let (s, _) = app.cancel(&token, &second, json!({"pin": "4821"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = point(&app, &token, &second, 34.0600, -118.2551).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::CONFLICT, "alert_not_active")
    );

    // A third, past the hard stop: refused as ended.
    let (_, third) = press(
        &app,
        &token,
        json!({"idempotency_key": "live-press-3", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    let third = third["alert_id"].as_str().expect("id").to_string();
    let (s, _) = point(&app, &token, &third, 34.0600, -118.2551).await;
    assert_eq!(s, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (s, body) = point(&app, &token, &third, 34.0650, -118.2551).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::CONFLICT, "sharing_ended")
    );
}

async fn stopping_needs_the_pin_and_the_duress_pin_keeps_the_trail(backend: &str) {
    let Some(app) = staffed_app(backend, |c| c.alerts.trail_every = Duration::from_millis(1)).await
    else {
        return;
    };
    let token = app.person("+12135550100").await;
    let mut profile = profile_body();
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    profile["duress_pin"] = json!("9999");
    let (s, body) = app.put_profile(&token, profile).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let raise = |key: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            let (s, a) = press(
                app,
                &token,
                json!({"idempotency_key": key, "location": {"lat": 34.0505, "lon": -118.2551}}),
            )
            .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{a}");
            a["alert_id"].as_str().expect("id").to_string()
        }
    };
    let stop = |id: String, pin: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/alerts/{id}/sharing/stop"),
                Some(&token),
                Some(json!({"pin": pin})),
            )
            .await
        }
    };

    // A wrong PIN stops nothing.
    let first = raise("stop-press-1").await;
    let (s, body) = stop(first.clone(), "1111").await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::FORBIDDEN, "pin_incorrect")
    );
    let (s, _) = point(&app, &token, &first, 34.0550, -118.2551).await;
    assert_eq!(s, StatusCode::CREATED);
    // The PIN stops it for good.
    let (s, with_pin) = stop(first.clone(), "4821").await;
    assert_eq!(s, StatusCode::OK, "{with_pin}");
    let (s, body) = point(&app, &token, &first, 34.0600, -118.2551).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::CONFLICT, "sharing_ended")
    );

    // The duress PIN answers the same, yet the trail still takes points and
    // the consulate sees the stop was forced.
    let second = raise("stop-press-2").await;
    let (s, forced) = stop(second.clone(), "9999").await;
    assert_eq!((s, &forced), (StatusCode::OK, &with_pin), "the same answer");
    let (s, _) = point(&app, &token, &second, 34.0550, -118.2551).await;
    assert_eq!(s, StatusCode::CREATED, "a forced stop keeps the trail open");
    let console = login(&app, "la.operator").await;
    let (_, detail) = console.case(&second).await;
    assert!(
        detail["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["kind"] == "sharing_forced"),
        "{detail}"
    );
    let (_, detail) = console.case(&first).await;
    assert!(
        detail["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["kind"] == "sharing_stopped")
    );
}

on_both_backends!(
    live_location_reaches_the_console_and_chosen_contacts,
    stopping_needs_the_pin_and_the_duress_pin_keeps_the_trail
);
