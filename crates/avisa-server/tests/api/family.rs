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
            .call(Method::POST, "/api/v1/contacts", Some(&token), Some(json!({"name": "Familia", "phone": phone, "language": language, "message": message})))
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

on_both_backends!(every_alert_sms_says_who_is_asking);
