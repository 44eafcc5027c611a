//! The seized phone: once a PIN is set, the token alone reads and changes
//! nothing personal. Contacts and the profile's personal fields need
//! `X-Avisa-Unlock` from `POST /api/v1/pin/check`; an alert's own status
//! shows recipients by kind and position only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const SISTER: &str = "Guadalupe Hermana";
const SISTER_PHONE: &str = "+12135557001";
const SISTER_MESSAGE: &str = "Lupita: me detuvieron, llama a la abogada Ruiz.";

/// A person with one contact; returns (token, contact id).
async fn person_with_sister(app: &TestApp, phone: &str) -> (String, String) {
    let token = app.person(phone).await;
    let (status, body) = app
        .add_contact(&token, json!({"name": SISTER, "phone": SISTER_PHONE, "language": "es", "message": SISTER_MESSAGE}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (token, body["id"].as_str().expect("id").to_string())
}

fn reveals(body: &Value) -> bool {
    let text = body.to_string();
    text.contains("Guadalupe") || text.contains("5557001") || text.contains("Lupita")
}

/// Every request that reads or changes contacts or the profile's personal
/// fields, with a body that would change something.
fn guarded(contact: &str) -> Vec<(Method, String, Option<Value>)> {
    let edit = json!({"name": "Todo bien", "phone": "+12135550199", "language": "es", "message": "Todo bien, no hagas nada"});
    let mut profile = profile_body();
    profile["name"] = json!("Otra Persona");
    profile["keyword"] = json!("tranquilo");
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    vec![
        (Method::GET, "/api/v1/contacts".into(), None),
        (Method::POST, "/api/v1/contacts".into(), Some(edit.clone())),
        (Method::GET, format!("/api/v1/contacts/{contact}"), None),
        (
            Method::PUT,
            format!("/api/v1/contacts/{contact}"),
            Some(edit),
        ),
        (Method::DELETE, format!("/api/v1/contacts/{contact}"), None),
        (
            Method::POST,
            "/api/v1/contacts/preview".into(),
            Some(json!({"message": "hola", "language": "es"})),
        ),
        (Method::PUT, "/api/v1/profile".into(), Some(profile)),
        (
            Method::DELETE,
            "/api/v1/profile".into(),
            Some(json!({"pin": "4821"})),
        ),
    ]
}

async fn nothing_personal_without_the_pin(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let (token, contact) = person_with_sister(&app, "+12135550100").await;
    // A second device of the same person, verified with its own code.
    let other_device = app.register("+12135550100").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app
        .sms_lines()
        .iter()
        .filter(|l| l["to"] == "+12135550100")
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no second code");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let code = app.last_code("+12135550100").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&other_device),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, other) = app.check_pin(&other_device, json!({"pin": "4821"})).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let foreign = other["unlock"].as_str().expect("unlock").to_string();
    let valid = app.unlock_of(&token).expect("the device's own unlock");

    for (method, path, body) in guarded(&contact) {
        for (what, unlock) in [
            ("without an unlock", None),
            (
                "with a forged unlock",
                Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
            ("with another device's unlock", Some(foreign.as_str())),
        ] {
            let (status, answer) = app
                .call_with(method.clone(), &path, Some(&token), unlock, body.clone())
                .await;
            assert_eq!(
                (status, error_code(&answer)),
                (StatusCode::FORBIDDEN, "pin_required"),
                "{method} {path} {what}: {answer}"
            );
            assert!(!reveals(&answer), "{method} {path} {what}: {answer}");
        }
    }

    // Nothing changed: the contact and the profile are as they were.
    let (status, contacts) = app
        .call_with(
            Method::GET,
            "/api/v1/contacts",
            Some(&token),
            Some(&valid),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = contacts["contacts"].as_array().expect("contacts");
    assert_eq!(list.len(), 1, "{contacts}");
    assert_eq!(list[0]["name"], SISTER);
    assert_eq!(list[0]["message"], SISTER_MESSAGE);

    // The profile without an unlock: complete and locked, nothing personal.
    let (status, profile) = app
        .call_without_unlock(Method::GET, "/api/v1/profile", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["locked"], true);
    assert_eq!(profile["complete"], true);
    for field in [
        "phone",
        "name",
        "home_state",
        "home_county",
        "keyword",
        "consulate",
    ] {
        assert_eq!(profile[field], Value::Null, "{field}: {profile}");
    }
    let (_, profile) = app
        .call_with(
            Method::GET,
            "/api/v1/profile",
            Some(&token),
            Some(&valid),
            None,
        )
        .await;
    assert_eq!(profile["name"], "María Pérez");
    assert_eq!(profile["locked"], false);

    // A PIN change ends every unlock made under the old PIN.
    let mut change = profile_body();
    change["cancel_pin"] = json!("7777");
    change["current_pin"] = json!("4821");
    let (status, changed) = app
        .call_with(
            Method::PUT,
            "/api/v1/profile",
            Some(&token),
            Some(&valid),
            Some(change),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (status, answer) = app
        .call_with(
            Method::GET,
            "/api/v1/contacts",
            Some(&token),
            Some(&valid),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::FORBIDDEN, "pin_required"),
        "an unlock from before the PIN change"
    );
    let fresh = changed["unlock"].as_str().expect("a fresh unlock");
    let (status, _) = app
        .call_with(
            Method::GET,
            "/api/v1/contacts",
            Some(&token),
            Some(fresh),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_press_and_its_status_need_no_pin_and_show_no_names(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    // A location update right after the press (the trail's own limit is
    // tested with the alerts).
    config.alerts.trail_every = std::time::Duration::ZERO;
    let app = TestApp::start(config, dir).await;
    let (token, _) = person_with_sister(&app, "+12135550100").await;

    // Practice: what each recipient would get is shown only with the PIN.
    let (status, practice) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "practice-no-pin", "practice": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{practice}");
    assert!(!reveals(&practice), "{practice}");

    let (status, alert) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "real-no-pin",
                        "location": {"lat": 34.05, "lon": -118.25, "accuracy_m": 20}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alert}");
    assert!(!reveals(&alert), "{alert}");
    let kinds: Vec<&str> = alert["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(kinds.contains(&"contact"), "{alert}");
    let id = alert["alert_id"].as_str().expect("id");

    let (status, now) = app
        .call_without_unlock(
            Method::GET,
            &format!("/api/v1/alerts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!reveals(&now), "{now}");
    let (status, _) = app
        .call_without_unlock(
            Method::POST,
            &format!("/api/v1/alerts/{id}/locations"),
            Some(&token),
            Some(json!({"lat": 34.06, "lon": -118.24, "accuracy_m": 15})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "location updates need no PIN");

    // With the unlock, the names too.
    let (_, named) = app.alert(&token, id).await;
    assert!(named.to_string().contains(SISTER), "{named}");
}

on_both_backends!(
    nothing_personal_without_the_pin,
    a_press_and_its_status_need_no_pin_and_show_no_names,
);

/// No API answer may be kept in the phone's cache; the app's files keep
/// their own caching.
#[tokio::test]
async fn api_answers_are_never_cached() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    for path in [
        "/api/v1/profile",
        "/api/v1/contacts",
        "/api/v1/nothing-here",
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}"
        );
    }
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .expect("GET /");
    assert_ne!(
        page.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "the app's own page"
    );
}

/// Contacts cannot be rewritten silently: a change to them or to the keyword
/// sends the person's own phone an SMS saying so.
#[tokio::test]
async fn a_change_to_contacts_or_keyword_is_told_to_the_persons_phone() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    // Every change told at once (the default groups them per ten minutes).
    config.alerts.changes_notice_every = std::time::Duration::ZERO;
    let app = TestApp::start(config, dir).await;
    let (token, contact) = person_with_sister(&app, "+12135550100").await;
    let told = |app: &TestApp| {
        app.sms_lines()
            .iter()
            .filter(|l| {
                l["to"] == "+12135550100"
                    && l["body"].as_str().is_some_and(|b| b.contains("cambiaron"))
            })
            .count()
    };
    app.wait_sms_to("+12135550100", |b| {
        b.contains("tus contactos o tu palabra clave cambiaron")
    })
    .await;
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/contacts/{contact}"),
            Some(&token),
            Some(json!({"name": "Todo bien", "phone": "+12135550199", "language": "es", "message": "Todo bien, no hagas nada"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut keyword = profile_body();
    keyword.as_object_mut().map(|p| p.remove("cancel_pin"));
    keyword["keyword"] = json!("tranquilo");
    let (status, body) = app.put_profile(&token, keyword).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while told(&app) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "told {} times",
            told(&app)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(told(&app), 3, "the new contact, its rewrite, the keyword");
    assert!(
        app.sms_lines().iter().all(|l| l["to"] != "+12135550199"),
        "nothing went to the new number"
    );
}

/// During the set-up the person is told once, at the end of the window,
/// not once per contact added.
#[tokio::test]
async fn the_setup_is_not_told_contact_by_contact() {
    let app = sqlite_app().await;
    let (token, _) = person_with_sister(&app, "+12135550100").await;
    let (status, _) = app
        .add_contact(&token, json!({"name": "Lic. Ruiz", "phone": "+12135557002", "language": "es", "message": "Abogada: me detuvieron."}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.dispatcher.drain().await.expect("drain");
    assert!(
        app.sms_lines()
            .iter()
            .all(|l| !l["body"].as_str().unwrap_or("").contains("cambiaron")),
        "{:#?}",
        app.sms_lines()
    );
}
