//! The panic alert through the API: press, status, live stream, cancel,
//! location trail, practice, idempotency, rate limit.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const LA: (f64, f64) = (34.0505, -118.2551);

/// A person (PIN 4821) with `n` contacts; returns the token.
pub(crate) async fn person_with_contacts(app: &TestApp, phone: &str, n: usize) -> String {
    let token = app.person(phone).await;
    for i in 0..n {
        let (status, body) = app
            .add_contact(
                &token,
                json!({
                    "name": format!("Contacto {i}"),
                    "phone": format!("+1213555{:04}", 7000 + i),
                    "language": if i % 2 == 0 { "es" } else { "en" },
                    "message": format!("Mensaje {i}: me detuvieron, llama a la abogada."),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    token
}

fn statuses(alert: &Value) -> Vec<String> {
    alert["recipients"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|x| x["status"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls the alert until every recipient's status is one of `want`.
async fn wait_statuses(app: &TestApp, token: &str, id: &str, want: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, alert) = app.alert(token, id).await;
        assert_eq!(status, StatusCode::OK);
        if statuses(&alert).iter().all(|s| want.contains(&s.as_str())) {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "statuses stuck at {:?}",
            statuses(&alert)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn alert_config(dir: &tempfile::TempDir, backend: &str) -> Option<avisa_server::Config> {
    let mut config = config_on(dir, backend).await?;
    config
        .alerts
        .duty_phones
        .insert("los-angeles".into(), "+12135550199".into());
    Some(config)
}

async fn press_reaches_every_recipient_with_location_and_duty_phone(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = alert_config(&dir, backend).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_with_contacts(&app, "+12135550100", 2).await;
    let (status, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "press-0001", "location": {"lat": LA.0, "lon": LA.1, "accuracy_m": 12.0}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    assert_eq!(alert["state"], "active");
    assert_eq!(alert["coverage"], "nearest");
    assert_eq!(alert["consulate"]["id"], "los-angeles");
    assert!(alert["consulate"]["phone"].as_str().is_some());
    let kinds: Vec<&str> = alert["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["consulate", "contact", "contact", "self"]);
    assert_eq!(alert["recipients"][1]["name"], "Contacto 0");

    let id = alert["alert_id"].as_str().expect("id").to_string();
    let done = wait_statuses(&app, &token, &id, &["sent"]).await;
    assert_eq!(done["alert_id"], json!(id));
    // The dispatcher had caught up (it sent the verification code), so the
    // commit handed these messages over instead of leaving them to a claim.
    // (The counter is shared by the tests of this process: at least ours.)
    let metrics = app.text("/metrics").await;
    let handed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("avisa_outbox_handed_over_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(handed >= 4.0, "{metrics}");

    let lines = app.sms_lines();
    let to = |n: &str| {
        lines
            .iter()
            .filter(|l| l["to"] == n)
            .map(|l| l["body"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let contact0 = to("+12135557000");
    assert_eq!(contact0.len(), 1);
    assert!(contact0[0].starts_with("Avisa: Maria Pérez pide ayuda:\nMensaje 0: me detuvieron, llama a la abogada.\nUbicacion: https://www.openstreetmap.org/?mlat=34.05050&mlon=-118.25510 (+/-12 m) a las "), "{}", contact0[0]);
    assert!(
        contact0[0].ends_with("hora del Pacifico."),
        "{}",
        contact0[0]
    );
    let contact1 = to("+12135557001");
    assert!(
        contact1[0].contains("\nLocation: https://www.openstreetmap.org/?mlat=34.05050"),
        "English contact: {}",
        contact1[0]
    );
    let duty = to("+12135550199");
    assert_eq!(duty.len(), 1);
    // The case number staff say: Los Angeles' first case of its year.
    assert!(
        duty[0].starts_with("AVISA ALERTA LAX-20")
            && duty[0].contains("-0001: María Pérez, tel +12135550100."),
        "{}",
        duty[0]
    );
    assert!(duty[0].contains(&format!("/console/alerts/{id}")));
    let own = to("+12135550100");
    assert!(
        own.iter()
            .any(|b| b.contains("tu alerta ha sido enviada a 2 contactos")),
        "{own:?}"
    );
    // Never the office switchboard from the directory.
    assert!(to("+12133516800").is_empty());

    // The location is sealed at rest like every personal field.
    let text = raw_database(&app);
    for needle in ["34.0505", "118.2551", "Mensaje 0", "abogada"] {
        assert!(!text.contains(needle), "{needle} stored in plain text");
    }
}

async fn the_same_key_never_sends_twice(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 1).await;
    let body = json!({"idempotency_key": "same-key-123"});
    let (s1, a1) = press(&app, &token, body.clone()).await;
    let (s2, a2) = press(&app, &token, body).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(a1["alert_id"], a2["alert_id"]);
    let id = a1["alert_id"].as_str().expect("id");
    wait_statuses(&app, &token, id, &["sent"]).await;
    // Concurrent replays of one key also make one alert.
    let key = json!({"idempotency_key": "concurrent-key-1"});
    let (r1, r2, r3) = tokio::join!(
        press(&app, &token, key.clone()),
        press(&app, &token, key.clone()),
        press(&app, &token, key)
    );
    assert_eq!(r1.1["alert_id"], r2.1["alert_id"]);
    assert_eq!(r2.1["alert_id"], r3.1["alert_id"]);
    wait_statuses(
        &app,
        &token,
        r1.1["alert_id"].as_str().expect("id"),
        &["sent"],
    )
    .await;
    let to_contact = app
        .sms_lines()
        .into_iter()
        .filter(|l| l["to"] == "+12135557000")
        .count();
    assert_eq!(to_contact, 2, "one message per alert, two alerts");
}

async fn practice_reaches_only_the_persons_own_phone(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = alert_config(&dir, backend).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_with_contacts(&app, "+12135550100", 2).await;
    let (status, alert) = press(&app, &token, json!({"idempotency_key": "practice-01", "practice": true, "location": {"lat": LA.0, "lon": LA.1}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    assert_eq!(alert["practice"], true);
    assert_eq!(
        alert["consulate"],
        Value::Null,
        "practice never reaches a consulate"
    );
    let kinds: Vec<&str> = alert["recipients"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["self"]);
    let previews = alert["previews"].as_array().expect("previews");
    assert_eq!(
        previews.len(),
        3,
        "the duty phone and two contacts, rendered"
    );
    assert!(
        previews
            .iter()
            .any(|p| p["body"].as_str().is_some_and(|b| b.contains("Mensaje 1")))
    );
    wait_statuses(
        &app,
        &token,
        alert["alert_id"].as_str().expect("id"),
        &["sent"],
    )
    .await;
    let lines = app.sms_lines();
    assert!(
        lines.iter().all(|l| l["to"] == "+12135550100"),
        "only the person's own phone: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["body"].as_str().is_some_and(|b| b.contains("PRACTICA")))
    );
}

/// Past the limit a real press is never refused: it is raised, reaches the
/// consulate's console and the person's phone, but not the contact an alert
/// of the window already reached; the answer says so.
async fn past_the_limit_a_press_is_raised_without_the_contacts(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 1).await;
    for i in 0..5 {
        let (status, body) = press(
            &app,
            &token,
            json!({"idempotency_key": format!("rate-key-{i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(body.get("limit_reached").is_none(), "{body}");
    }
    let (status, body) = press(&app, &token, json!({"idempotency_key": "rate-key-5"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "never refused: {body}");
    assert_eq!(body["limit_reached"], true, "{body}");
    let kinds: Vec<&str> = body["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"contact"), "{kinds:?}");
    assert!(
        kinds.contains(&"self"),
        "the person's phone is told: {kinds:?}"
    );
    assert_ne!(body["coverage"], "none", "routed to a consulate: {body}");
    let own = app
        .wait_sms_to("+12135550100", |b| {
            b.contains("Limite de alertas alcanzado")
        })
        .await;
    assert!(
        own["body"]
            .as_str()
            .is_some_and(|b| b.contains("consulado"))
    );
    // A retry of an accepted press is still answered with its alert.
    let (status, again) = press(&app, &token, json!({"idempotency_key": "rate-key-0"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(again.get("limit_reached").is_none());
}

/// 50 parallel presses with different keys: every one is raised, and the
/// contact gets the limit's 5 alerts, not more (the count is checked again
/// where alerts are written; a press that loses that race is raised past
/// the limit).
async fn the_alert_limit_holds_under_parallel_presses(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 1).await;
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                press(
                    &app,
                    &token,
                    json!({"idempotency_key": format!("parallel-{i}")}),
                )
                .await
            })
        })
        .collect();
    let mut past = 0;
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        if body["limit_reached"] == true {
            past += 1;
        }
    }
    assert_eq!(past, 45, "5 within the limit, 45 past it");
    let to_contact = |lines: &[Value]| lines.iter().filter(|l| l["to"] == "+12135557000").count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while to_contact(&app.sms_lines()) < 5 {
        assert!(std::time::Instant::now() < deadline, "the 5 alerts' SMS");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Give any message of a sixth alert time to show.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        to_contact(&app.sms_lines()),
        5,
        "one SMS per alert within the limit"
    );
}

/// A rehearsal never blocks a real press; a false alarm taken back counts
/// (a loop of press-and-cancel must not message the contacts without end),
/// and past the limit the real press is still raised.
async fn practice_is_apart_and_cancelled_alerts_count(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 0).await;
    for i in 0..5 {
        let (status, body) = press(
            &app,
            &token,
            json!({"idempotency_key": format!("rehearse-{i}"), "practice": true}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, _) = press(
        &app,
        &token,
        json!({"idempotency_key": "rehearse-5", "practice": true}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "practice has its limit"
    );
    // Four real presses, each a false alarm taken back with the PIN...
    for i in 0..4 {
        let (status, body) = press(
            &app,
            &token,
            json!({"idempotency_key": format!("real-press-{i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(body.get("limit_reached").is_none(), "{body}");
        let id = body["alert_id"].as_str().expect("id");
        let (status, body) = app.cancel(&token, id, json!({"pin": "4821"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // ...so one more fits within the limit, and the next is past it.
    let (status, body) = press(&app, &token, json!({"idempotency_key": "real-press-4"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body.get("limit_reached").is_none(), "{body}");
    let (status, body) = press(&app, &token, json!({"idempotency_key": "real-press-5"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["limit_reached"], true, "{body}");
}

/// A trail is bounded: one point per `trail_every`, `trail_max` in all.
async fn the_trail_is_bounded(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 0).await;
    let (_, alert) = press(&app, &token, json!({"idempotency_key": "trail-bounded", "location": {"lat": LA.0, "lon": LA.1, "accuracy_m": 30}})).await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let resp = app
        .client
        .post(format!("{}/api/v1/alerts/{id}/locations", app.base))
        .bearer_auth(&token)
        .json(&json!({"lat": 34.06, "lon": -118.24, "accuracy_m": 8}))
        .send()
        .await
        .expect("post");
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "within 10 s of the press's point"
    );
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=10).contains(&wait), "{wait}");

    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.alerts.trail_every = Duration::ZERO;
    config.alerts.trail_max = 3;
    let app = TestApp::start(config, dir).await;
    let token = person_with_contacts(&app, "+12135550100", 0).await;
    let (_, alert) = press(&app, &token, json!({"idempotency_key": "trail-capped", "location": {"lat": LA.0, "lon": LA.1, "accuracy_m": 30}})).await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/alerts/{id}/locations");
    for i in 0..2 {
        let (status, _) = app
            .call(
                Method::POST,
                &path,
                Some(&token),
                Some(json!({"lat": 34.06 + f64::from(i) / 100.0, "lon": -118.24})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = app
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"lat": 34.2, "lon": -118.24})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "trail_full")
    );
}

async fn bad_presses_are_refused_and_change_nothing(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let unverified = app.register("+12135550111").await;
    let (status, _) = press(&app, &unverified, json!({"idempotency_key": "aaaaaaaa"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let no_profile = app.verified("+12135550122").await;
    let (status, body) = press(&app, &no_profile, json!({"idempotency_key": "aaaaaaaa"})).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "profile_incomplete")
    );

    let token = person_with_contacts(&app, "+12135550100", 1).await;
    let cases: Vec<(Value, StatusCode, &str, Option<&str>)> = vec![
        (
            json!({"idempotency_key": "k"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_invalid",
            Some("idempotency_key"),
        ),
        (
            json!({"idempotency_key": "has spaces in it"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_invalid",
            Some("idempotency_key"),
        ),
        (
            json!({"idempotency_key": "valid-key-1", "location": {"lat": 91.0, "lon": 0.0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "location_invalid",
            Some("location.lat"),
        ),
        (
            json!({"idempotency_key": "valid-key-1", "location": {"lat": 34.0, "lon": -181.0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "location_invalid",
            Some("location.lon"),
        ),
        (
            json!({"idempotency_key": "valid-key-1", "location": {"lat": 34.0, "lon": -118.0, "accuracy_m": -5}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "location_invalid",
            Some("location.accuracy_m"),
        ),
        (
            json!({"idempotency_key": "valid-key-1", "location": {"lat": "north", "lon": -118.0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            json!({"idempotency_key": "valid-key-1", "practice": "yes"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            json!({"idempotency_key": "valid-key-1", "urgent": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            None,
        ),
    ];
    for (body, want, code, field) in cases {
        let (status, resp) = press(&app, &token, body.clone()).await;
        assert_eq!((status, error_code(&resp)), (want, code), "{body}");
        if let Some(f) = field {
            assert_eq!(resp["error"]["field"], f);
        }
    }
    let (status, body) = app
        .raw(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some("application/json"),
            "{\"idempotency_key\":",
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    // None of them raised anything: the key is still free.
    let (status, alert) = press(&app, &token, json!({"idempotency_key": "valid-key-1"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        alert["coverage"], "home_county",
        "no location: routed by the home county"
    );
    assert_eq!(
        alert["consulate"]["id"], "los-angeles",
        "home county Los Angeles"
    );

    // Someone else's alert is a 404, on every alert endpoint.
    let other = person_with_contacts(&app, "+12135550133", 0).await;
    let id = alert["alert_id"].as_str().expect("id");
    let (status, _) = app.alert(&other, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.cancel(&other, id, json!({"pin": "4821"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{id}/locations"),
            Some(&other),
            Some(json!({"lat": 34.0, "lon": -118.0})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::GET, "/api/v1/alerts/not-an-id", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn outside_the_us_is_outside_coverage_but_contacts_are_told(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 1).await;
    let (status, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "abroad-001", "location": {"lat": 19.4326, "lon": -99.1332}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(alert["coverage"], "outside");
    assert_eq!(alert["consulate"], Value::Null);
    let kinds: Vec<&str> = alert["recipients"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["contact", "self"]);
}

/// Guam: no office's jurisdiction lists it, so the 24-hour centre has the
/// alert (its duty phone is told, the case is CIAM's), never "outside
/// coverage" (issue 34).
async fn guam_reaches_the_24_hour_centre(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = alert_config(&dir, backend).await else {
        return;
    };
    config
        .alerts
        .duty_phones
        .insert("ciam".into(), "+15206237874".into());
    let app = TestApp::start(config, dir).await;
    let token = person_with_contacts(&app, "+12135550100", 1).await;
    let (status, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "guam-0001", "location": {"lat": 13.4757, "lon": 144.7489}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    assert_eq!(alert["coverage"], "ciam");
    let kinds: Vec<&str> = alert["recipients"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["consulate", "contact", "self"]);
    let id = alert["alert_id"].as_str().expect("id").to_string();
    wait_statuses(&app, &token, &id, &["sent"]).await;
    let lines = app.sms_lines();
    let duty = lines
        .iter()
        .find(|l| l["to"] == "+15206237874")
        .expect("the centre's duty phone is told");
    assert!(
        duty["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("AVISA ALERTA CIAM-")),
        "{duty}"
    );
    let own = lines
        .iter()
        .find(|l| {
            l["to"] == "+12135550100"
                && l["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("tu alerta ha sido enviada"))
        })
        .expect("the person's confirmation");
    assert!(
        own["body"]
            .as_str()
            .is_some_and(|b| b.contains("y al CIAM (centro 24 horas)")),
        "{own}"
    );
}

/// Cancel with the dispatcher driven by hand, so what was and was not sent
/// is exact.
async fn cancel_withdraws_what_has_not_gone_and_tells_the_rest_im_safe(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = alert_config(&dir, backend).await else {
        return;
    };
    let app = TestApp::start_with(config, dir, false).await;
    // Codes are sent by the dispatcher: drive it while setting up.
    let token = {
        let phone = "+12135550100";
        let token = app.register(phone).await;
        app.dispatcher.drain().await.expect("drain");
        let code = app.last_code(phone).await;
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/devices/verify",
                Some(&token),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app.put_profile(&token, profile_body()).await;
        assert_eq!(s, StatusCode::OK);
        for i in 0..2 {
            let (s, _) = app
                .add_contact(&token, json!({"name": format!("C{i}"), "phone": format!("+1213555{:04}", 7000 + i), "language": "es", "message": "ayuda"}))
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        token
    };
    let cancel = |id: String, pin: &'static str| {
        let app = &app;
        let token = token.clone();
        async move { app.cancel(&token, &id, json!({"pin": pin})).await }
    };

    // A: cancelled before anything went out: everything withdrawn, no "I'm safe".
    let (_, a) = press(
        &app,
        &token,
        json!({"idempotency_key": "cancel-a-1", "location": {"lat": LA.0, "lon": LA.1}}),
    )
    .await;
    let a_id = a["alert_id"].as_str().expect("id").to_string();
    let (status, body) = cancel(a_id.clone(), "0000").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "pin_incorrect")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4 attempts left"))
    );
    let (status, body) = cancel(a_id.clone(), "12").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "pin_invalid")
    );
    let (status, body) = cancel(a_id.clone(), "4821").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "cancelled");
    assert_eq!(body["withdrawn"], 4, "duty phone, two contacts, own phone");
    assert_eq!(body["safe_messages"], 0);
    assert_eq!(statuses(&body), ["withdrawn"; 4]);
    let before = app.sms_lines().len();
    app.dispatcher.drain().await.expect("drain");
    assert_eq!(
        app.sms_lines().len(),
        before,
        "nothing of a withdrawn alert is sent"
    );
    let (status, body) = cancel(a_id.clone(), "4821").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "already_cancelled")
    );

    // B: everything went out, then cancel: "I'm safe" to each recipient.
    let (_, b) = press(
        &app,
        &token,
        json!({"idempotency_key": "cancel-b-1", "location": {"lat": LA.0, "lon": LA.1}}),
    )
    .await;
    let b_id = b["alert_id"].as_str().expect("id").to_string();
    app.dispatcher.drain().await.expect("drain");
    let (status, body) = cancel(b_id.clone(), "4821").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["withdrawn"].as_u64(), body["safe_messages"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(statuses(&body), ["sent"; 4]);
    app.dispatcher.drain().await.expect("drain");
    let (_, after) = app.alert(&token, &b_id).await;
    let safe: Vec<&str> = after["recipients"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["safe_status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(safe, ["sent"; 4]);
    let lines = app.sms_lines();
    let safe_to_contact = lines
        .iter()
        .filter(|l| {
            l["to"] == "+12135557000"
                && l["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("ha cancelado la alerta anterior"))
        })
        .count();
    assert_eq!(safe_to_contact, 1);
    assert!(lines.iter().any(|l| l["to"] == "+12135550199"
        && l["body"].as_str().is_some_and(|b| b.contains("CANCELADA"))));

    // C: five wrong PINs lock cancelling for a while, even with the right PIN.
    let (_, c) = press(&app, &token, json!({"idempotency_key": "cancel-c-1"})).await;
    let c_id = c["alert_id"].as_str().expect("id").to_string();
    for _ in 0..4 {
        let (status, _) = cancel(c_id.clone(), "1111").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let resp = app
        .client
        .post(format!("{}/api/v1/alerts/{c_id}/cancel", app.base))
        .bearer_auth(&token)
        .json(&json!({"pin": "1111"}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((800..=900).contains(&wait), "about 15 minutes: {wait}");
    let (status, body) = cancel(c_id.clone(), "4821").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "pin_locked")
    );
    let (_, still) = app.alert(&token, &c_id).await;
    assert_eq!(still["state"], "active");
}

async fn the_location_trail_grows_and_the_newest_shows(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    // Points as fast as the test sends them (see the next test for the
    // limits).
    config.alerts.trail_every = Duration::ZERO;
    let app = TestApp::start(config, dir).await;
    let token = person_with_contacts(&app, "+12135550100", 0).await;
    let (_, alert) = press(&app, &token, json!({"idempotency_key": "trail-0001", "location": {"lat": LA.0, "lon": LA.1, "accuracy_m": 30}})).await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/alerts/{id}/locations");
    let (status, _) = app
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"lat": 34.06, "lon": -118.24, "accuracy_m": 8})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"lat": 200, "lon": 0})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "location_invalid")
    );
    let (_, now) = app.alert(&token, &id).await;
    assert_eq!(
        now["location"],
        json!({"lat": 34.06, "lon": -118.24, "accuracy_m": 8.0})
    );
    let (status, _) = app.cancel(&token, &id, json!({"pin": "4821"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(json!({"lat": 34.0, "lon": -118.0})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "alert_not_active")
    );
}

async fn the_live_stream_follows_each_recipient(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = config_on(&dir, backend).await else {
        return;
    };
    let app = TestApp::start_with(config, dir, false).await;
    let phone = "+12135550100";
    let token = app.register(phone).await;
    app.dispatcher.drain().await.expect("drain");
    let code = app.last_code(phone).await;
    app.call(
        Method::POST,
        "/api/v1/devices/verify",
        Some(&token),
        Some(json!({"code": code})),
    )
    .await;
    app.put_profile(&token, profile_body()).await;
    let (_, alert) = press(&app, &token, json!({"idempotency_key": "stream-0001"})).await;
    let id = alert["alert_id"].as_str().expect("id").to_string();

    // A token in the URL is refused, even the right one: URLs are logged.
    let refused = app
        .client
        .get(format!(
            "{}/api/v1/alerts/{id}/events?access_token={token}",
            app.base
        ))
        .send()
        .await
        .expect("stream");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/alerts/{id}?access_token={token}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "not beside a header either"
    );
    // The stream with the token as a header, as the app reads it.
    let mut stream = app
        .client
        .get(format!("{}/api/v1/alerts/{id}/events", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/event-stream"))
    );
    let mut seen = String::new();
    let next_event = |seen: &mut String| -> Option<Value> {
        let end = seen.find("\n\n")?;
        let event: String = seen.drain(..end + 2).collect();
        let data = event.lines().find_map(|l| l.strip_prefix("data: "))?;
        serde_json::from_str(data).ok()
    };
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut drained = false;
    while Instant::now() < deadline {
        while let Some(e) = next_event(&mut seen) {
            events.push(e);
        }
        if let Some(last) = events.last() {
            if statuses(last) == ["sent"] {
                break;
            }
            if !drained {
                assert_eq!(
                    statuses(last),
                    ["queued"],
                    "the first event shows the alert as queued"
                );
                app.dispatcher.drain().await.expect("drain");
                drained = true;
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            _ => break,
        }
    }
    let last = events.last().expect("events");
    assert_eq!(
        statuses(last),
        ["sent"],
        "the stream showed the message go out: {events:#?}"
    );
    // Another person cannot open it.
    let other = app.register("+12135550177").await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/alerts/{id}/events"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "unverified device");
}

/// Past the bound of presses in flight the server answers at once, 503
/// with Retry-After; sent again with the same key, every press is accepted
/// once: nothing lost, nothing doubled.
async fn presses_past_the_bound_are_refused_at_once_and_go_on_retry(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.limits.presses_in_flight = 1;
    config.alerts.rate_limit = 100;
    let app = std::sync::Arc::new(TestApp::start(config, dir).await);
    let token = person_with_contacts(&app, "+12135550100", 1).await;
    let press = |i: usize| {
        let (app, token) = (app.clone(), token.clone());
        async move {
            let started = std::time::Instant::now();
            let resp = app
                .client
                .post(format!("{}/api/v1/alerts", app.base))
                .bearer_auth(&token)
                .json(&json!({"idempotency_key": format!("shed-press-{i:04}")}))
                .send()
                .await
                .expect("press");
            let retry = resp.headers().get("retry-after").cloned();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, retry, body, started.elapsed())
        }
    };
    let first: Vec<_> = futures_join((0..20).map(press)).await;
    let mut busy = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for (i, (status, retry, body, took)) in first.into_iter().enumerate() {
        assert!(
            took < std::time::Duration::from_secs(2),
            "answered within 2 s: {took:?}"
        );
        match status {
            StatusCode::ACCEPTED => {
                ids.insert(body["alert_id"].as_str().expect("id").to_string());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(error_code(&body), "busy");
                assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
                busy.push(i);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        !busy.is_empty(),
        "20 at once against a bound of 1: some were refused"
    );
    // The app sends each again with its key until it is taken.
    for i in busy {
        loop {
            let (status, _, body, _) = press(i).await;
            if status == StatusCode::ACCEPTED {
                ids.insert(body["alert_id"].as_str().expect("id").to_string());
                break;
            }
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(ids.len(), 20, "every press once");
}

/// Runs the futures together and gathers their results in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

on_both_backends!(
    presses_past_the_bound_are_refused_at_once_and_go_on_retry,
    press_reaches_every_recipient_with_location_and_duty_phone,
    the_same_key_never_sends_twice,
    practice_reaches_only_the_persons_own_phone,
    past_the_limit_a_press_is_raised_without_the_contacts,
    the_alert_limit_holds_under_parallel_presses,
    practice_is_apart_and_cancelled_alerts_count,
    the_trail_is_bounded,
    bad_presses_are_refused_and_change_nothing,
    outside_the_us_is_outside_coverage_but_contacts_are_told,
    guam_reaches_the_24_hour_centre,
    cancel_withdraws_what_has_not_gone_and_tells_the_rest_im_safe,
    the_location_trail_grows_and_the_newest_shows,
    the_live_stream_follows_each_recipient,
);

/// A press that waited for a connection carries its press time: the SMS say
/// when it was pressed and when it went; a week
/// old is refused (422) and sends nothing.
#[tokio::test]
async fn a_late_press_says_when_it_was_pressed() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (status, body) = app
        .add_contact(
            &token,
            json!({"name": "Lupita", "phone": "+12135557001", "message": "Me detuvieron."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let now = avisa_core::now_millis();
    let (status, body) = press(
        &app,
        &token,
        json!({"idempotency_key": "late-press-too-old", "pressed_at": now - 8 * 24 * 3_600_000}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body), &body["error"]["field"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "pressed_at_invalid",
            &json!("pressed_at")
        )
    );
    let (status, body) = press(
        &app,
        &token,
        json!({"idempotency_key": "late-press-19-min", "pressed_at": now - 19 * 60 * 1000, "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let sms = app
        .wait_sms_to("+12135557001", |b| b.contains("Me detuvieron."))
        .await;
    let text = sms["body"].as_str().unwrap_or_default();
    assert!(
        text.contains("Ha pulsado el boton a las") && text.contains("(sin conexion)"),
        "{text}"
    );
}

/// A graceful stop (SIGTERM) with a live stream open: the stream ends with
/// a reconnect hint (retry in a second) and the server stops well within
/// 10 s — a phone or console holding a stream never holds up a restart.
#[tokio::test]
async fn a_graceful_stop_ends_streams_with_a_reconnect_hint() {
    let mut app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (_, alert) = press(&app, &token, json!({"idempotency_key": "graceful-stream"})).await;
    let id = alert["alert_id"].as_str().expect("id");
    let mut stream = app
        .client
        .get(format!("{}/api/v1/alerts/{id}/events", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("a first event")
        .expect("read");
    assert!(first.is_some());
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stopped within 10 s with a stream open");
    let mut rest = String::new();
    while let Ok(Ok(Some(bytes))) =
        tokio::time::timeout(Duration::from_secs(2), stream.chunk()).await
    {
        rest.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(
        rest.contains("event: reconnect") && rest.contains("retry: 1000"),
        "the stream's last words: {rest:?}"
    );
    eprintln!("stopped in {} ms", stopped.elapsed().as_millis());
}
