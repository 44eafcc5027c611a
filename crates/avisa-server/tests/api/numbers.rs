//! Numbers as people write them: a Mexican number typed the usual way is
//! saved as Mexican, a number valid in two countries is never guessed, and a
//! chosen country is never replaced by another.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const MX_FORMS: [&str; 12] = [
    "55 1234 5678",
    "55.1234.5678",
    "55-1234-5678",
    "52 55 1234 5678",
    "521 55 1234 5678",
    "+52 1 55 1234 5678",
    "044 55 1234 5678",
    "045 55 1234 5678",
    "01 55 1234 5678",
    "011 52 55 1234 5678",
    "00 52 55 1234 5678",
    "+52 55 1234 5678",
];

async fn read(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/phone/read", None, Some(body))
        .await
}

async fn contact_count(app: &TestApp, token: &str) -> usize {
    let (status, body) = app.contacts(token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["contacts"].as_array().map_or(0, Vec::len)
}

async fn numbers_as_people_write_them(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    // Reading, as the app does before saving.
    for typed in MX_FORMS {
        let (status, body) = read(&app, json!({"phone": typed, "country": "MX"})).await;
        assert_eq!(
            (status, &body),
            (
                StatusCode::OK,
                &json!({"phone": "+525512345678", "country": "MX", "international": "+52 55 1234 5678"})
            ),
            "{typed:?}"
        );
    }
    let (status, body) = read(&app, json!({"phone": "55 1234 5678"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "phone_ambiguous");
    assert_eq!(
        body["error"]["readings"],
        json!([
            {"phone": "+525512345678", "country": "MX", "international": "+52 55 1234 5678"},
            {"phone": "+15512345678", "country": "US", "international": "+1 551-234-5678"},
        ])
    );
    let (status, body) = read(&app, json!({"phone": "55 1234 5678", "country": "US"})).await;
    assert_eq!(
        (status, &body["phone"]),
        (StatusCode::OK, &json!("+15512345678"))
    );
    let (status, body) = read(&app, json!({"phone": "(213) 555-0100", "country": "MX"})).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phone_invalid"),
        "a US-only number read in Mexico is refused, never moved to the US"
    );
    let (status, body) = read(&app, json!({"phone": "+1 213 555 0100", "country": "MX"})).await;
    assert_eq!((status, &body["country"]), (StatusCode::OK, &json!("US")));
    let (status, body) = read(&app, json!({"phone": "55 1234 5678", "country": "ZZ"})).await;
    assert_eq!(
        (status, error_code(&body), &body["error"]["field"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "country_invalid",
            &json!("country")
        )
    );

    // The person's own number.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "55 1234 5678"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phone_ambiguous"),
        "no device for a guessed number"
    );
    assert!(app.sms_lines().is_empty(), "no code sent to a guess");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "044 55 1234 5678", "country": "MX"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.wait_sms(1).await[0]["to"], "+525512345678");

    // Contacts.
    let token = app.person("+12135550100").await;
    let (status, body) = app
        .add_contact(
            &token,
            json!({"name": "Mamá", "phone": "55 1234 5678", "message": "Me detuvieron."}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phone_ambiguous")
    );
    assert_eq!(body["error"]["readings"].as_array().map(Vec::len), Some(2));
    assert_eq!(contact_count(&app, &token).await, 0, "nothing saved");

    let (status, created) = app
        .add_contact(&token, json!({"name": "Mamá", "phone": "01 55 1234 5678", "country": "MX", "message": "Me detuvieron."}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (
            &created["phone"],
            &created["country"],
            &created["international"]
        ),
        (
            &json!("+525512345678"),
            &json!("MX"),
            &json!("+52 55 1234 5678")
        )
    );
    let id = created["id"].as_str().expect("id");
    let (status, updated) = app
        .call(
            Method::PUT,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"name": "Mamá", "phone": "55 1234 5678", "country": "US", "message": "Me detuvieron."})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["phone"], &updated["country"]),
        (&json!("+15512345678"), &json!("US")),
        "the chosen country is the one stored"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"name": "Mamá", "phone": "664 123 4567", "country": "US", "message": "Me detuvieron."})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phone_invalid")
    );
    let (_, got) = app
        .call(
            Method::GET,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        got["phone"], "+15512345678",
        "a refused change changes nothing"
    );
}

on_both_backends!(numbers_as_people_write_them);
