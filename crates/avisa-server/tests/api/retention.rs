//! Retention on a short clock: message texts wiped once final, a resolved
//! case's trail and then its personal fields, ended timers — and the
//! statistics intact — on both backends.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::{login, staffed_app};
use crate::support::*;

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn each_class_goes_at_its_time_and_the_counts_stay(backend: &str) {
    let Some(app) = staffed_app(backend, |c| {
        c.retention.message_bodies = Duration::from_millis(500);
        c.retention.resolved_trail = Duration::from_secs(2);
        c.retention.resolved_personal = Duration::from_secs(4);
        c.retention.ended_checkins = Duration::from_millis(500);
        c.retention.every = Duration::from_millis(200);
    })
    .await
    else {
        return;
    };
    let token = app.person("+12135550100").await;
    let (s, c) = app
        .add_contact(
            &token,
            json!({"name": "Lupita", "phone": "+12135557000", "message": "Me detuvieron."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "retention-1", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let console = login(&app, "la.operator").await;
    let supervisor = login(&app, "la.super").await;
    let detail = || async {
        let (s, d) = console.case(&id).await;
        assert_eq!(s, StatusCode::OK, "{d}");
        d
    };
    // While the messages are out and the case open, the console reads them.
    let first = detail().await;
    assert!(first["erased_at"].is_null(), "an open case is kept");
    let texts = |d: &Value| {
        d["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert!(
        texts(&first)
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| t.contains("Me detuvieron.")))
    );

    // Once final, the texts go (the statuses stay).
    until("message texts wiped", async || {
        texts(&detail().await).iter().all(Option::is_none)
    })
    .await;
    let d = detail().await;
    assert!(
        d["recipients"]
            .as_array()
            .expect("r")
            .iter()
            .all(|r| r["status"] == "sent"),
        "{d}"
    );
    assert_eq!(
        d["trail"].as_array().expect("trail").len(),
        1,
        "the trail of an open case stays"
    );

    // A note and a resolution: the case's personal fields.
    let (s, _) = console
        .call(
            Method::POST,
            &format!("/api/v1/console/alerts/{id}/notes"),
            Some(json!({"text": "Hablé con Lupita."})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = console
        .resolve(
            &id,
            json!({"outcome": "detained", "detail": "Centro de detención de Adelanto"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = detail().await;
    assert!(
        d["erased_at"]["trail"].is_i64() && d["erased_at"]["personal"].is_i64(),
        "{d}"
    );
    let (_, before) = supervisor
        .call(Method::GET, "/api/v1/console/stats", None)
        .await;

    // The trail goes first, the personal fields after.
    until("trail deleted", async || {
        detail().await["trail"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    let d = detail().await;
    assert_eq!(
        d["recipients"][0]["name"], "Lupita",
        "personal fields still there"
    );
    until("personal fields wiped", async || {
        detail().await["recipients"][0]["name"].is_null()
    })
    .await;
    let d = detail().await;
    assert!(d["case"]["outcome_detail"].is_null(), "{d}");
    assert_eq!(
        d["case"]["outcome"], "detained",
        "the outcome stays for the statistics"
    );
    let note = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["kind"] == "note")
        .expect("the note's entry");
    assert!(note["detail"].is_null(), "{note}");
    let (_, after) = supervisor
        .call(Method::GET, "/api/v1/console/stats", None)
        .await;
    assert_eq!(before, after, "the statistics keep their counts");

    // A timer checked out is deleted after its deadline passes the cutoff.
    let at = |ms: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::milliseconds(ms))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let (s, timer) = app
        .call(
            Method::POST,
            "/api/v1/checkins",
            Some(&token),
            Some(json!({"appointment_at": at(200), "deadline": at(400), "place": "ICE"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{timer}");
    let tid = timer["id"].as_str().expect("id").to_string();
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/checkins/{tid}/checkout"),
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    until("the ended timer deleted", async || {
        app.call(
            Method::GET,
            &format!("/api/v1/checkins/{tid}"),
            Some(&token),
            None,
        )
        .await
        .0 == StatusCode::NOT_FOUND
    })
    .await;
}

on_both_backends!(each_class_goes_at_its_time_and_the_counts_stay);
