//! The duress PIN: a cancel forced on the person looks exactly like a cancel
//! on their phone, while the alert stays open and flagged for the consulate
//! and the contacts hear that it was forced.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::{add_staff, login};
use crate::support::*;

const DURESS: &str = "2580";

/// Every key path of a JSON value ("alert.recipients[].status"), to compare
/// the shape of two answers.
fn shape(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let path = format!("{at}.{k}");
                out.insert(path.clone());
                shape(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(v, "", &mut out);
    out
}

/// A person with one contact, a duress PIN when asked, and an alert whose
/// messages all went out; returns (token, alert id).
async fn pressed(app: &TestApp, phone: &str, sister: &str, duress: bool) -> (String, String) {
    let token = app.person(phone).await;
    let (status, body) = app
        .add_contact(&token, json!({"name": "Lupita", "phone": sister, "language": "es", "message": "Me detuvieron."}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    if duress {
        let mut profile = profile_body();
        profile.as_object_mut().map(|p| p.remove("cancel_pin"));
        profile["duress_pin"] = json!(DURESS);
        let (status, body) = app.put_profile(&token, profile).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!body.to_string().contains("duress"), "{body}");
    }
    let (status, alert) = press(
        app,
        &token,
        json!({"idempotency_key": format!("duress-{}", phone.trim_start_matches('+')), "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 15}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    // Every message out (contact, consulate, own phone) before the cancel.
    for _ in 0..200 {
        let (_, a) = app
            .call_without_unlock(
                Method::GET,
                &format!("/api/v1/alerts/{id}"),
                Some(&token),
                None,
            )
            .await;
        if a["recipients"]
            .as_array()
            .is_some_and(|r| r.len() == 3 && r.iter().all(|x| x["status"] != "queued"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    (token, id)
}

async fn cancel(app: &TestApp, token: &str, id: &str, pin: &str) -> (StatusCode, Value) {
    app.call_without_unlock(
        Method::POST,
        &format!("/api/v1/alerts/{id}/cancel"),
        Some(token),
        Some(json!({"pin": pin})),
    )
    .await
}

async fn a_forced_cancel_looks_like_a_cancel_and_the_alert_stands(backend: &str) {
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

    // Setting it: never the cancel PIN; no answer tells it is set.
    let token = app.person("+12135550111").await;
    let mut profile = profile_body();
    profile["duress_pin"] = json!("4821");
    let (status, body) = app.put_profile(&token, profile.clone()).await;
    assert_eq!(
        (status, error_code(&body), &body["error"]["field"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "duress_same_as_pin",
            &json!("duress_pin")
        )
    );
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    let (status, body) = app.put_profile(&token, profile.clone()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "duress_same_as_pin"),
        "the kept cancel PIN is checked too"
    );
    profile["duress_pin"] = json!("12a4");
    let (status, body) = app.put_profile(&token, profile).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "pin_invalid")
    );

    // Two people, two alerts: one cancelled for real, one under duress.
    let (real_token, real_id) = pressed(&app, "+12135550121", "+12135557021", false).await;
    let (forced_token, forced_id) = pressed(&app, "+12135550122", "+12135557022", true).await;

    let (real_status, real) = cancel(&app, &real_token, &real_id, "4821").await;
    let (forced_status, forced) = cancel(&app, &forced_token, &forced_id, DURESS).await;
    assert_eq!(real_status, StatusCode::OK, "{real}");
    assert_eq!(forced_status, real_status, "{forced}");
    assert_eq!(keys(&forced), keys(&real), "the same body shape");
    assert_eq!(forced["state"], "cancelled");
    assert_eq!(forced["safe_messages"], real["safe_messages"]);
    assert!(!forced.to_string().contains("duress"), "{forced}");

    // Read back from the phone: cancelled, every way it can look.
    let (_, status) = app
        .call_without_unlock(
            Method::GET,
            &format!("/api/v1/alerts/{forced_id}"),
            Some(&forced_token),
            None,
        )
        .await;
    assert_eq!(status["state"], "cancelled");
    let (again_real, body_real) = cancel(&app, &real_token, &real_id, "4821").await;
    let (again_forced, body_forced) = cancel(&app, &forced_token, &forced_id, "4821").await;
    assert_eq!(
        (again_forced, error_code(&body_forced)),
        (again_real, error_code(&body_real)),
        "a second cancel is refused the same way"
    );
    let (status, body) = app
        .call_without_unlock(
            Method::POST,
            &format!("/api/v1/alerts/{forced_id}/locations"),
            Some(&forced_token),
            Some(json!({"lat": 34.06, "lon": -118.25})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "alert_not_active")
    );
    // The duress PIN unlocks as the PIN does.
    let (status, body) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/pin/check",
            Some(&forced_token),
            Some(json!({"pin": DURESS})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["unlock"].is_string());

    // The SMS: the contact hears it was forced, never "I'm safe"; the
    // consulate's duty phone is told; the person's own phone gets the
    // ordinary confirmation of a cancel.
    let sister = app
        .wait_sms_to("+12135557022", |b| b.contains("SIGUE EN PIE"))
        .await;
    assert!(
        sister["body"]
            .as_str()
            .is_some_and(|b| b.contains("obligaron a cancelar"))
    );
    let own = app
        .wait_sms_to("+12135550122", |b| {
            b.contains("ha cancelado la alerta anterior")
        })
        .await;
    assert!(
        own["body"]
            .as_str()
            .is_some_and(|b| b.contains("se encuentra bien"))
    );
    // The duty phone hears which case, by its number and first name.
    app.wait_sms_to("+12135550199", |b| {
        b.starts_with("AVISA LAX-20") && b.contains(": CANCELADA BAJO PRESION")
    })
    .await;
    let to_sister: Vec<Value> = app
        .sms_lines()
        .into_iter()
        .filter(|l| l["to"] == "+12135557022")
        .collect();
    assert!(
        to_sister.iter().all(|l| !l["body"]
            .as_str()
            .unwrap_or("")
            .contains("se encuentra bien")),
        "{to_sister:?}"
    );
    // The real cancel told its contact "I'm safe".
    app.wait_sms_to("+12135557021", |b| b.contains("se encuentra bien"))
        .await;

    // The console: the forced one open, flagged, at the top.
    let console = login(&app, "la.operator").await;
    let (status, queue) = console.queue().await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let first = &queue[0];
    assert_eq!(first["alert_id"], json!(forced_id));
    assert_eq!(first["state"], "active");
    assert!(first["duress_at"].is_i64(), "{first}");
    let real_entry = queue
        .as_array()
        .and_then(|q| q.iter().find(|a| a["alert_id"] == json!(real_id)))
        .expect("the real cancel is listed");
    assert_eq!(real_entry["state"], "cancelled");
    assert!(real_entry["duress_at"].is_null());
    let (_, detail) = console.case(&forced_id).await;
    assert_eq!(detail["state"], "active");
    assert!(detail["duress_at"].is_i64());
    assert!(
        detail["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["kind"] == "duress")),
        "{detail}"
    );

    // Staff take the case; the phone, held by whoever forced the cancel,
    // does not see it go on.
    let (status, body) = console.acknowledge(&forced_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, seen) = app
        .call_without_unlock(
            Method::GET,
            &format!("/api/v1/alerts/{forced_id}"),
            Some(&forced_token),
            None,
        )
        .await;
    assert!(seen["consulate_received_at"].is_i64(), "{seen}");
    assert!(seen["consulate_acknowledged_at"].is_null(), "{seen}");

    // "Delete my data", forced after it: the phone sees a delete, the data
    // stays for the consulate.
    let (status, body) = app
        .call(
            Method::DELETE,
            "/api/v1/profile",
            Some(&forced_token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app.profile(&forced_token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the phone's token is gone"
    );
    let (status, detail) = console.case(&forced_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        detail["person"]["name"], "María Pérez",
        "the case keeps the person"
    );
}

on_both_backends!(a_forced_cancel_looks_like_a_cancel_and_the_alert_stands);
