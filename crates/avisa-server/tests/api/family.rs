//! The family's moment: every alert SMS a contact gets says who is asking,
//! whatever the person wrote, in the contact's language.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

/// Self-written messages in both languages, GSM-7 and accented: each
/// contact's SMS in the gateway's log begins with "Avisa: <name> pide
/// ayuda:" (or "needs help:"), then the text as written.
async fn every_alert_sms_says_who_is_asking(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    let written = [
        (
            "+12135557000",
            "es",
            "Me detuvo migra. Avisa a la familia y llama al consulado.",
            "Avisa: Maria Pérez pide ayuda:",
        ),
        (
            "+12135557001",
            "en",
            "They took me. Call the lawyer.",
            "Avisa: Maria Pérez needs help:",
        ),
        (
            "+12135557002",
            "es",
            "Mamá: me detuvieron, ¡llama a Núñez!",
            "Avisa: María Pérez pide ayuda:",
        ),
    ];
    for (phone, language, message, _) in written {
        let (s, body) = app
            .add_contact(&token, json!({"name": "Familia", "phone": phone, "language": language, "message": message}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = press(&app, &token, json!({"idempotency_key": "who-is-asking"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    for (phone, _, message, first) in written {
        let line = app.wait_sms_to(phone, |_| true).await;
        let sms = line["body"].as_str().unwrap_or("");
        assert_eq!(sms.lines().next(), Some(first), "{sms}");
        assert_eq!(sms.lines().nth(1), Some(message), "{sms}");
    }
}

/// What ICE's detainee locator needs goes, after the alert, only to the
/// contacts the person chose; it is sealed at rest, never in the logs, never
/// given without the PIN, and never shown to a session unlocked with the
/// duress PIN (whose own writes go nowhere).
async fn the_locator_details_reach_only_the_chosen_contacts(backend: &str) {
    let logs_before = captured_logs().len();
    let Some(app) = crate::console::staffed_app(backend, |_| {}).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    // Values no other test uses, to look for anywhere.
    let a_number = "987654321";
    let legal = "Xochiquetzal Ytzel Quintanilla";
    for (phone, locator) in [
        ("+12135557010", true),
        ("+12135557011", false),
        ("+525512345678", true),
    ] {
        let (s, body) = app
            .add_contact(&token, json!({"name": "Familia", "phone": phone, "message": "Me detuvieron.", "locator": locator}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert_eq!(body["locator"], locator);
    }
    // Bad input changes nothing.
    for (bad, field) in [
        (json!({"a_number": "A12"}), "a_number"),
        (json!({"birth_date": "01/05/1990"}), "birth_date"),
        (json!({"birth_date": "2999-01-01"}), "birth_date"),
        (json!({"legal_name": "x".repeat(101)}), "legal_name"),
    ] {
        let (s, body) = app
            .call(
                Method::PUT,
                "/api/v1/profile/locator",
                Some(&token),
                Some(bad),
            )
            .await;
        assert_eq!(
            (s, body["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}"
        );
    }
    let (s, body) = app
        .call(Method::PUT, "/api/v1/profile/locator", Some(&token), Some(json!({"legal_name": legal, "birth_country": "México", "birth_date": "1990-05-01", "a_number": "A 987-654-321"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        (body["a_number"].as_str(), body["searchable"].as_bool()),
        (Some(a_number), Some(true))
    );
    // Never without the PIN.
    let (s, _) = app
        .call_without_unlock(Method::GET, "/api/v1/profile/locator", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, body) = app
        .call(Method::GET, "/api/v1/profile/locator", Some(&token), None)
        .await;
    assert_eq!(
        (s, body["legal_name"].as_str()),
        (StatusCode::OK, Some(legal))
    );

    let (s, body) = press(&app, &token, json!({"idempotency_key": "locator-1"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    for chosen in ["+12135557010", "+525512345678"] {
        let line = app
            .wait_sms_to(chosen, |b| b.contains("locator.ice.gov"))
            .await;
        let sms = line["body"].as_str().unwrap_or("");
        assert!(sms.contains(&format!("Numero A: {a_number}")), "{sms}");
        assert!(
            sms.contains(legal) && sms.contains("1 de mayo de 1990"),
            "{sms}"
        );
        // After the alert itself.
        let lines = app.sms_lines();
        let to: Vec<&str> = lines
            .iter()
            .filter(|l| l["to"] == chosen)
            .filter_map(|l| l["body"].as_str())
            .collect();
        assert_eq!(to.len(), 2, "{to:?}");
        assert!(
            to[0].starts_with("Avisa: Maria Pérez pide ayuda:"),
            "{to:?}"
        );
    }
    let not_chosen = app.wait_sms_to("+12135557011", |_| true).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.sms_lines()
            .iter()
            .filter(|l| l["to"] == "+12135557011")
            .count(),
        1,
        "only the alert: {not_chosen}"
    );
    // The alert's recipients are the alert's; the locator SMS is not one.
    // The person's own phone is listed last, never between two contacts.
    let kinds: Vec<&str> = body["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["contact", "contact", "contact", "self"]);
    let (_, again) = app
        .call(
            Method::GET,
            &format!("/api/v1/alerts/{}", body["alert_id"].as_str().unwrap_or("")),
            Some(&token),
            None,
        )
        .await;
    let kinds: Vec<&str> = again["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["contact", "contact", "contact", "self"],
        "GET lists them the same"
    );

    // The consulate's case shows them.
    let officer = crate::console::login(&app, "la.operator").await;
    let id = body["alert_id"].as_str().expect("id");
    let (s, case) = officer.case(id).await;
    assert_eq!(s, StatusCode::OK, "{case}");
    assert_eq!(case["person"]["locator"]["a_number"], a_number, "{case}");
    assert_eq!(case["person"]["locator"]["birth_date"], "1990-05-01");

    // Sealed at rest; never in the logs.
    let raw = raw_database(&app);
    for secret in [a_number, legal, "Xochiquetzal"] {
        assert!(!raw.contains(secret), "{secret} in the database");
    }
    let logs = captured_logs();
    assert!(logs.len() > logs_before, "the logs were captured");
    for secret in [a_number, legal, "Xochiquetzal"] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }

    // A session unlocked with the duress PIN sees none of it; what it writes
    // takes no effect.
    let (s, _) = app
        .put_profile(&token, json!({"name": "María Pérez", "home_state": "CA", "keyword": "auxilio", "duress_pin": "2580"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/pin/check",
            Some(&token),
            Some(json!({"pin": "2580"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let forced = body["unlock"].as_str().expect("unlock").to_string();
    let (s, seen) = app
        .call_with(
            Method::GET,
            "/api/v1/profile/locator",
            Some(&token),
            Some(&forced),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (seen["a_number"].as_str(), seen["legal_name"].as_str()),
        (None, None),
        "{seen}"
    );
    let (s, _) = app
        .call_with(
            Method::PUT,
            "/api/v1/profile/locator",
            Some(&token),
            Some(&forced),
            Some(json!({"legal_name": "Otro", "birth_country": "Honduras"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, seen) = app
        .call_with(
            Method::GET,
            "/api/v1/profile/locator",
            Some(&token),
            Some(&forced),
            None,
        )
        .await;
    assert_eq!(seen["legal_name"], "Otro", "the session reads back its own");
    let (_, body) = app
        .call_without_unlock(
            Method::POST,
            "/api/v1/pin/check",
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    let unlock = body["unlock"].as_str().expect("unlock").to_string();
    let (_, real) = app
        .call_with(
            Method::GET,
            "/api/v1/profile/locator",
            Some(&token),
            Some(&unlock),
            None,
        )
        .await;
    assert_eq!(
        real["legal_name"].as_str(),
        Some(legal),
        "the real ones stand"
    );
}

/// The same number saved under two contacts: the second is told so, and the
/// number gets one alert SMS (the first contact's), not two.
async fn a_number_saved_twice_gets_one_message(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    let (s, first) = app
        .add_contact(
            &token,
            json!({"name": "Mamá", "phone": "+12135557020", "message": "Primero."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["same_number_as"], serde_json::Value::Null);
    let (s, second) = app
        .add_contact(
            &token,
            json!({"name": "Madre", "phone": "(213) 555-7020", "message": "Segundo."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    assert_eq!(second["same_number_as"], "Mamá");
    let (_, list) = app.contacts(&token).await;
    assert_eq!(list["contacts"][0]["same_number_as"], "Madre");
    let (s, body) = press(&app, &token, json!({"idempotency_key": "saved-twice"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let kinds: Vec<&str> = body["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["contact", "self"]);
    let line = app.wait_sms_to("+12135557020", |_| true).await;
    assert!(
        line["body"]
            .as_str()
            .is_some_and(|b| b.contains("Primero.")),
        "{line}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.sms_lines()
            .iter()
            .filter(|l| l["to"] == "+12135557020")
            .count(),
        1
    );
}

on_both_backends!(
    a_number_saved_twice_gets_one_message,
    the_name_may_come_last,
    every_alert_sms_says_who_is_asking,
    the_locator_details_reach_only_the_chosen_contacts
);

/// The code screen repeats the number as the server read it, and the
/// service number is shown as people read it.
#[tokio::test]
async fn numbers_are_shown_as_read() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.sms.service_number = "+12135550199".into();
    let app = TestApp::start(config, dir).await;
    let (s, body) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "(213) 555-0100", "country": "US"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["international"], "+1 213-555-0100");
    let (s, body) = app.call(Method::GET, "/api/v1/config", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            body["service_number"].as_str(),
            body["service_number_display"].as_str()
        ),
        (Some("+12135550199"), Some("+1 213-555-0199"))
    );
}

/// The person may put who is asking at the end of each contact's SMS.
async fn the_name_may_come_last(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    let mut profile = profile_body();
    profile["name_at_end"] = json!(true);
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    let (s, body) = app.put_profile(&token, profile).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["name_at_end"], true);
    let (s, body) = app
        .add_contact(
            &token,
            json!({"name": "Mamá", "phone": "+12135557030", "message": "Me detuvieron."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = press(&app, &token, json!({"idempotency_key": "name-last"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let line = app.wait_sms_to("+12135557030", |_| true).await;
    let sms = line["body"].as_str().unwrap_or("");
    assert!(sms.starts_with("Me detuvieron.\n"), "{sms}");
    assert!(sms.ends_with("\nAvisa: Maria Pérez pide ayuda."), "{sms}");
}
