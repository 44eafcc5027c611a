//! The coerced person (issue 32): a session unlocked with the duress PIN
//! answers as a real one and changes nothing real; a burst of PIN guesses
//! verifies at most the limit; a past alert's place needs the PIN.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::{add_staff, login};
use crate::support::*;

const DURESS: &str = "2580";
const SISTER: &str = "+12135557031";

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The unlock a PIN earns on this phone, as whoever holds it would get it.
async fn unlock_with(app: &TestApp, token: &str, pin: &str) -> String {
    let (status, body) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/pin/check",
            Some(token),
            Some(json!({"pin": pin})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["unlock"].as_str().expect("unlock").to_string()
}

async fn a_duress_session_changes_nothing_real(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config
        .alerts
        .duty_phones
        .insert("los-angeles".into(), "+12135550199".into());
    let app = TestApp::start(config, dir).await;
    add_staff(&app.config, "la.operator", "los-angeles", "operator").await;

    // The person: PIN 4821, duress PIN 2580, one contact; then a press.
    let token = app.person("+12135550131").await;
    let (status, contact) = app
        .add_contact(&token, json!({"name": "Lupita", "phone": SISTER, "language": "es", "message": "Me detuvieron."}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact_id = contact["id"].as_str().expect("id").to_string();
    let mut profile = profile_body();
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    profile["duress_pin"] = json!(DURESS);
    let (status, body) = app.put_profile(&token, profile).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "coerced-1", "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 15}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    let alert_id = alert["alert_id"].as_str().expect("id").to_string();
    app.wait_sms_to(SISTER, |b| b.contains("Me detuvieron"))
        .await;

    // The coercer has the phone and the duress PIN.
    let forced = unlock_with(&app, &token, DURESS).await;
    let real = unlock_with(&app, &token, "4821").await;

    // The duress PIN compared with the real one is no oracle: the real PIN
    // and any other PIN answer alike under a duress unlock.
    let mut as_duress = profile_body();
    as_duress.as_object_mut().map(|p| p.remove("cancel_pin"));
    let mut answers = Vec::new();
    for guess in ["4821", "7777"] {
        as_duress["duress_pin"] = json!(guess);
        let (status, body) = app
            .call_with(
                Method::PUT,
                "/api/v1/profile",
                Some(&token),
                Some(&forced),
                Some(as_duress.clone()),
            )
            .await;
        answers.push((status, keys(&body), body["locked"].clone()));
    }
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::OK);
    // The real PIN's holder may be told "must differ".
    as_duress["duress_pin"] = json!("4821");
    let (status, body) = app
        .call_with(
            Method::PUT,
            "/api/v1/profile",
            Some(&token),
            Some(&real),
            Some(as_duress),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "duress_same_as_pin")
    );

    // A new cancel PIN and keyword, as a real change would be answered.
    let mut change = profile_body();
    change["cancel_pin"] = json!("1111");
    change["current_pin"] = json!(DURESS);
    change["keyword"] = json!("nuevo");
    let (status, changed) = app
        .call_with(
            Method::PUT,
            "/api/v1/profile",
            Some(&token),
            Some(&forced),
            Some(change),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["keyword"], "NUEVO", "reads back as done");
    assert!(
        changed["unlock"].is_string(),
        "a new unlock, as for a real change"
    );
    let forced = changed["unlock"].as_str().expect("unlock").to_string();
    let (_, seen) = app
        .call_with(
            Method::GET,
            "/api/v1/profile",
            Some(&token),
            Some(&forced),
            None,
        )
        .await;
    assert_eq!(seen["keyword"], "NUEVO");
    // The PIN the coercer gave no longer works, as after a real change.
    let (status, _) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/pin/check",
            Some(&token),
            Some(json!({"pin": DURESS})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The contact rewritten under duress: read back changed by that
    // session, unchanged for the person and for alerts.
    let (status, body) = app
        .call_with(
            Method::PUT,
            &format!("/api/v1/contacts/{contact_id}"),
            Some(&token),
            Some(&forced),
            Some(json!({"name": "Lupita", "phone": "+12135550000", "language": "es", "message": "Todo bien."})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["phone"], "+12135550000");
    let (_, list) = app
        .call_with(
            Method::GET,
            "/api/v1/contacts",
            Some(&token),
            Some(&forced),
            None,
        )
        .await;
    assert_eq!(list["contacts"][0]["message"], "Todo bien.", "{list}");
    let (status, body) = app
        .call_with(
            Method::POST,
            "/api/v1/contacts",
            Some(&token),
            Some(&forced),
            Some(json!({"name": "Otro", "phone": "+12135550001", "language": "es", "message": "Hola."})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let real_now = unlock_with(&app, &token, "4821").await;
    let (_, list) = app
        .call_with(
            Method::GET,
            "/api/v1/contacts",
            Some(&token),
            Some(&real_now),
            None,
        )
        .await;
    let contacts = list["contacts"].as_array().expect("contacts");
    assert_eq!(contacts.len(), 1, "{list}");
    assert_eq!(contacts[0]["message"], "Me detuvieron.");
    assert_eq!(contacts[0]["phone"], SISTER);
    let (_, mine) = app
        .call_with(
            Method::GET,
            "/api/v1/profile",
            Some(&token),
            Some(&real_now),
            None,
        )
        .await;
    assert_eq!(
        mine["keyword"], "AUXILIO",
        "the SMS keyword still raises the alert"
    );

    // The cancel with the PIN set under duress is a forced cancel: the
    // phone sees "cancelled", the sister (at her real number) hears it was
    // forced, the console sees it forced and what was tried.
    let (status, body) = app
        .call_without_unlock(
            Method::POST,
            &format!("/api/v1/alerts/{alert_id}/cancel"),
            Some(&token),
            Some(json!({"pin": "1111"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "cancelled");
    let sister = app
        .wait_sms_to(SISTER, |b| b.contains("SIGUE EN PIE"))
        .await;
    assert!(
        sister["body"]
            .as_str()
            .is_some_and(|b| b.contains("obligaron a cancelar")),
        "{sister}"
    );
    assert!(
        app.sms_lines()
            .iter()
            .all(|l| l["to"] != "+12135550000" && l["to"] != "+12135550001"),
        "nothing to a number written under duress"
    );
    let console = login(&app, "la.operator").await;
    let (_, detail) = console.case(&alert_id).await;
    assert_eq!(detail["state"], "active", "{detail}");
    assert!(detail["duress_at"].is_i64(), "{detail}");
    let tried: BTreeSet<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == "duress_change")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(
        tried,
        BTreeSet::from(["cancel_pin", "contacts", "duress_pin", "profile"]),
        "{detail}"
    );
    // Both PINs the coercer chose act as duress PINs; the real one is real.
    for pin in ["1111", "7777"] {
        unlock_with(&app, &token, pin).await;
    }
}

async fn a_burst_of_guesses_verifies_at_most_the_limit(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550132").await;
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let client = app.client.clone();
            let url = format!("{}/api/v1/pin/check", app.base);
            let token = token.clone();
            let pin = format!("{:04}", 1000 + i);
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"pin": pin}))
                    .send()
                    .await
                    .expect("guess")
            })
        })
        .collect();
    let mut wrong = Vec::new();
    let mut locked = 0;
    for g in guesses {
        let resp = g.await.expect("task");
        match resp.status() {
            StatusCode::FORBIDDEN => {
                let body: Value = resp.json().await.expect("json");
                wrong.push(body["error"]["message"].as_str().unwrap_or("").to_string());
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(resp.headers().contains_key("retry-after"));
                locked += 1;
            }
            other => panic!("a guess answered {other}"),
        }
    }
    // Five attempts in all: four told how many are left (4, 3, 2, 1 —
    // each once), the fifth and every other one refused as locked.
    wrong.sort();
    assert_eq!(wrong.len(), 4, "{wrong:?}");
    for (left, message) in (1..=4).zip(&wrong) {
        assert!(
            message.contains(&format!("{left} attempts left")),
            "{wrong:?}"
        );
    }
    assert_eq!(locked, 46);
    // The right PIN waits for the lock to end.
    let (status, body) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/pin/check",
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "pin_locked")
    );
}

async fn a_past_alert_s_place_needs_the_pin(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550133").await;
    let (status, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "place-of-a-past-alert", "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 15}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/alerts/{id}");
    let (_, now) = app
        .call_without_unlock(Method::GET, &path, Some(&token), None)
        .await;
    assert_eq!(
        now["location"]["lat"], 34.0505,
        "the status screen needs it: {now}"
    );

    let (status, body) = app
        .call_without_unlock(
            Method::POST,
            &format!("{path}/cancel"),
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, past) = app
        .call_without_unlock(Method::GET, &path, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(past["location"].is_null(), "{past}");
    assert!(!past.to_string().contains("34.05"), "{past}");
    let (_, unlocked) = app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(unlocked["location"]["lat"], 34.0505, "{unlocked}");
}

on_both_backends!(
    a_duress_session_changes_nothing_real,
    a_burst_of_guesses_verifies_at_most_the_limit,
    a_past_alert_s_place_needs_the_pin,
);
