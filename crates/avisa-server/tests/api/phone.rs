//! The phone API part 1 (devices, profile, contacts), operations endpoints and
//! start-up checks.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use avisa_server::App;

use crate::support::*;

// ---- operations --------------------------------------------------------

#[tokio::test]
async fn operations_endpoints() {
    let app = sqlite_app().await;
    let resp = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("x-request-id").is_some(),
        "every response carries a request id"
    );
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );

    let (status, spec) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/devices",
        "/api/v1/devices/verify",
        "/api/v1/profile",
        "/api/v1/contacts",
        "/api/v1/contacts/{id}",
        "/api/v1/alerts/{id}/events",
        "/api/v1/console/login",
        "/healthz",
        "/hooks/twilio/status",
        "/hooks/twilio/inbound",
        "/hooks/kannel/dlr",
        "/hooks/kannel/inbound",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI description"
        );
    }
    assert!(spec["components"]["schemas"]["ContactRequest"].is_object());
    // The refusals every route of a kind can give are in the document, and
    // the console's session and CSRF token are its security.
    let press = &spec["paths"]["/api/v1/alerts"]["post"]["responses"];
    for status in ["400", "401", "403", "413", "415", "422", "429"] {
        assert!(
            press[status].is_object(),
            "POST /api/v1/alerts lacks {status}"
        );
    }
    let ack = &spec["paths"]["/api/v1/console/alerts/{id}/acknowledge"]["post"];
    assert_eq!(
        ack["security"],
        json!([{"console_session": [], "console_csrf": []}])
    );
    assert!(ack["responses"]["401"].is_object() && ack["responses"]["404"].is_object());
    assert_eq!(
        spec["components"]["schemas"]["Language"]["enum"],
        json!(["es", "en"]),
        "the values the API speaks"
    );
    // A method a path does not answer, a bad query string: the JSON error
    // shape like every other refusal.
    let resp = app
        .client
        .patch(format!("{}/api/v1/profile", app.base))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get("allow").is_some());
    let body: serde_json::Value = resp.json().await.expect("a JSON body");
    assert_eq!(error_code(&body), "method_not_allowed");
    let (status, body) = app
        .call(Method::GET, "/hooks/kannel/dlr?id=1&id=2&%zz", None, None)
        .await;
    assert!(status.is_client_error(), "{status}");
    assert!(body["error"]["code"].is_string(), "{body}");

    let metrics = app.text("/metrics").await;
    assert!(metrics.contains("avisa_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/readyz\""), "{metrics}");

    let (status, body) = app
        .call(Method::GET, "/api/v1/nothing-here", None, None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

// ---- devices -----------------------------------------------------------

#[tokio::test]
async fn register_sends_a_code_in_the_device_language() {
    let app = sqlite_app().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "(213) 555-0100"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token"].as_str().map(str::len), Some(43));
    assert_eq!(body["verified"], false);
    assert!(body["device_id"].as_str().is_some());
    let lines = app.wait_sms(1).await;
    assert_eq!(lines[0]["to"], "+12135550100");
    assert!(
        lines[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("codigo de verificacion")),
        "Spanish by default"
    );
    assert_eq!(app.last_code("+12135550100").await.len(), 6);

    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "+52 55 1234 5678", "language": "en"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let last = app.wait_sms(2).await.pop().expect("line");
    assert_eq!(last["to"], "+525512345678");
    assert!(
        last["body"]
            .as_str()
            .is_some_and(|b| b.contains("verification code"))
    );
}

#[tokio::test]
async fn register_refuses_bad_input_and_changes_nothing() {
    let app = sqlite_app().await;
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            Some("application/json"),
            json!({"phone": "12"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone_invalid",
        ),
        (
            Some("application/json"),
            json!({"phone": ""}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone_required",
        ),
        (
            Some("application/json"),
            json!({"phone": "+1 000 000 0000"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone_invalid",
        ),
        (
            Some("application/json"),
            "{\"phone\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Some("application/json"),
            json!({"phone": 2135550100u64}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Some("application/json"),
            json!({"phone": "2135550100", "admin": true}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Some("application/json"),
            json!({"phone": "2135550100", "language": "fr"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Some("application/json"),
            json!({}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            None,
            json!({"phone": "2135550100"}).to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("application/json"),
            json!({"phone": "2135550100", "pad": "x".repeat(20_000)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (ct, body, want_status, want_code) in cases {
        let (status, resp) = app
            .raw(Method::POST, "/api/v1/devices", None, ct, body.clone())
            .await;
        assert_eq!(
            (status, error_code(&resp)),
            (want_status, want_code),
            "body {body:.80}"
        );
        assert!(
            resp["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (_, resp) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "12"})),
        )
        .await;
    assert_eq!(resp["error"]["field"], "phone");
    // One good registration afterwards: its code is the only SMS ever sent.
    app.register("+12135550100").await;
    let lines = app.wait_sms(1).await;
    assert_eq!(
        lines[0]["to"], "+12135550100",
        "no SMS was sent for bad input"
    );
}

#[tokio::test]
async fn register_is_rate_limited_per_phone() {
    let app = sqlite_app().await;
    for _ in 0..3 {
        app.register("+12135550100").await;
    }
    let resp = app
        .client
        .post(format!("{}/api/v1/devices", app.base))
        .json(&json!({"phone": "213-555-0100"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    // Another number is not affected; the refused request sent nothing.
    app.register("+12135550199").await;
    let lines = app.wait_sms(4).await;
    assert_eq!(
        lines.iter().filter(|l| l["to"] == "+12135550100").count(),
        3
    );
}

#[tokio::test]
async fn verify_checks_the_code() {
    let app = sqlite_app().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            None,
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some("not-a-token"),
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let token = app.register("+12135550100").await;
    let code = app.last_code("+12135550100").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": "12ab56"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "code_invalid")
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": wrong})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "code_incorrect")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4 attempts"))
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["verified"], true);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "already_verified")
    );

    // Five wrong tries burn the code.
    let token = app.register("+12135550101").await;
    let code = app.last_code("+12135550101").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        let (_, body) = app
            .call(
                Method::POST,
                "/api/v1/devices/verify",
                Some(&token),
                Some(json!({"code": wrong})),
            )
            .await;
        assert_eq!(error_code(&body), "code_incorrect");
    }
    let (_, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": wrong})),
        )
        .await;
    assert_eq!(error_code(&body), "code_expired");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "code_expired")
    );
    let (status, _) = app.profile(&token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "still unverified");
}

// ---- profile -----------------------------------------------------------

#[tokio::test]
async fn profile_set_read_and_pin_rules() {
    let app = sqlite_app().await;
    let unverified = app.register("+12135550100").await;
    let (status, body) = app.profile(&unverified).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "device_not_verified")
    );

    let token = app.verified("+12135550111").await;
    let (status, body) = app.profile(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"phone": "+12135550111", "name": null, "home_state": null, "home_county": null, "language": "es", "keyword": null, "name_at_end": false, "pin_set": false, "complete": false, "locked": false, "consulate": null})
    );

    let mut no_pin = profile_body();
    no_pin.as_object_mut().expect("object").remove("cancel_pin");
    let bad: Vec<(Value, &str, &str)> = vec![
        (no_pin, "pin_required", "cancel_pin"),
        (
            json!({"name": "  ", "home_state": "CA", "cancel_pin": "4821", "keyword": "auxilio"}),
            "required",
            "name",
        ),
        (
            json!({"name": "A", "home_state": "ZZ", "cancel_pin": "4821", "keyword": "auxilio"}),
            "home_state_invalid",
            "home_state",
        ),
        (
            json!({"name": "A", "home_state": "CA", "cancel_pin": "12", "keyword": "auxilio"}),
            "pin_invalid",
            "cancel_pin",
        ),
        (
            json!({"name": "A", "home_state": "CA", "cancel_pin": "12ab", "keyword": "auxilio"}),
            "pin_invalid",
            "cancel_pin",
        ),
        (
            json!({"name": "A", "home_state": "CA", "cancel_pin": "4821", "keyword": "stop"}),
            "keyword_reserved",
            "keyword",
        ),
        (
            // A STOP word in Spanish, which would opt the person out.
            json!({"name": "A", "home_state": "CA", "cancel_pin": "4821", "keyword": "Cancelar"}),
            "keyword_reserved",
            "keyword",
        ),
        (
            json!({"name": "A", "home_state": "CA", "cancel_pin": "4821", "keyword": "dos palabras"}),
            "keyword_invalid",
            "keyword",
        ),
        (
            json!({"name": "x".repeat(81), "home_state": "CA", "cancel_pin": "4821", "keyword": "auxilio"}),
            "too_long",
            "name",
        ),
    ];
    for (body, code, field) in bad {
        let (status, resp) = app.put_profile(&token, body.clone()).await;
        assert_eq!(
            (status, error_code(&resp)),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "{body}"
        );
        assert_eq!(resp["error"]["field"], field);
    }
    let (status, resp) = app
        .put_profile(
            &token,
            json!({"name": "A", "home_state": "CA", "cancel_pin": 4821, "keyword": "auxilio"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&resp)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        "a PIN is a string"
    );
    let (_, body) = app.profile(&token).await;
    assert_eq!(
        body["name"],
        Value::Null,
        "refused requests changed nothing"
    );

    let (status, body) = app.put_profile(&token, profile_body()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Setting the PIN hands this device an unlock for what follows.
    let mut body = body;
    let unlock = body
        .as_object_mut()
        .and_then(|o| o.remove("unlock"))
        .expect("an unlock");
    assert!(unlock.as_str().is_some_and(|u| u.len() > 20));
    assert!(
        body.as_object_mut()
            .and_then(|o| o.remove("expires_in"))
            .and_then(|e| e.as_u64())
            .is_some_and(|e| (1..=900).contains(&e))
    );
    let expected = json!({"phone": "+12135550111", "name": "María Pérez", "home_state": "CA", "home_county": "Los Angeles", "language": "es", "keyword": "AUXILIO", "name_at_end": false, "pin_set": true, "complete": true, "locked": false, "consulate": {"id": "los-angeles", "name": "Consulado General de México en Los Ángeles", "phone": avisa_core::directory::Directory::embedded().get("los-angeles").and_then(|o| o.phone.clone())}});
    assert_eq!(body, expected);
    let (_, body) = app.profile(&token).await;
    assert_eq!(body, expected, "the PIN is never returned");

    // Changing the PIN needs the current one; keeping it does not.
    let mut change = profile_body();
    change["cancel_pin"] = json!("99887766");
    let (status, body) = app.put_profile(&token, change.clone()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "pin_incorrect")
    );
    change["current_pin"] = json!("0000");
    let (status, _) = app.put_profile(&token, change.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    change["current_pin"] = json!("4821");
    let (status, _) = app.put_profile(&token, change).await;
    assert_eq!(status, StatusCode::OK);
    let mut keep = profile_body();
    keep.as_object_mut().expect("object").remove("cancel_pin");
    keep["language"] = json!("en");
    let (status, body) = app.put_profile(&token, keep).await;
    assert_eq!(
        (status, &body["language"], &body["pin_set"]),
        (StatusCode::OK, &json!("en"), &json!(true))
    );
}

// ---- contacts ----------------------------------------------------------

fn contact(n: usize) -> Value {
    json!({"name": format!("Contacto {n}"), "phone": format!("(213) 555-{:04}", 300 + n), "language": "es", "message": "Me detuvo inmigración. Llama a la abogada."})
}

#[tokio::test]
async fn contacts_crud_with_encoding_and_limits() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (status, body) = app.contacts(&token).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"contacts": [], "max": 10}))
    );

    let (status, created) = app
        .add_contact(&token, json!({"name": "Mamá", "phone": "+52 55 1234 5678", "language": "es", "message": "Hija: me detuvieron. Llama al consulado."}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["phone"], "+525512345678");
    assert_eq!(created["encoding"], "GSM-7");
    // The text, the line saying who asks ("Avisa: Maria Pérez pide ayuda:")
    // and the longest location line: 2 SMS.
    assert_eq!(created["segments"], 2);
    let id = created["id"].as_str().expect("id").to_string();

    let (status, got) = app
        .call(
            Method::GET,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((status, &got), (StatusCode::OK, &created));

    // `segments` counts what the contact receives: who asks, the text and
    // the location line (at its longest, 110 characters in English); the
    // limit is on the text alone (3 SMS: 201 UCS-2 characters).
    let long = "á".repeat(150);
    let (status, updated) = app
        .call(
            Method::PUT,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"name": "Mamá", "phone": "2135550100", "language": "en", "message": long})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (
            &updated["encoding"],
            &updated["segments"],
            &updated["language"]
        ),
        (&json!("UCS-2"), &json!(5), &json!("en")),
        "the text is 3 SMS; with who asks and the location line the contact gets 5"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"name": "Mamá", "phone": "2135550100", "language": "en", "message": "á".repeat(202)})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "message_too_long")
    );

    let bad: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "A", "phone": "555", "language": "es", "message": "hola"}),
            "phone_invalid",
            "phone",
        ),
        (
            json!({"name": "", "phone": "2135550100", "language": "es", "message": "hola"}),
            "required",
            "name",
        ),
        (
            json!({"name": "A", "phone": "2135550100", "language": "es", "message": "  "}),
            "required",
            "message",
        ),
        (
            json!({"name": "A", "phone": "2135550100", "language": "es", "message": "á".repeat(202)}),
            "message_too_long",
            "message",
        ),
        (
            json!({"name": "A", "phone": "2135550100", "language": "es", "message": "a".repeat(460)}),
            "message_too_long",
            "message",
        ),
    ];
    for (body, code, field) in bad {
        let (status, resp) = app.add_contact(&token, body.clone()).await;
        assert_eq!(
            (status, error_code(&resp), &resp["error"]["field"]),
            (StatusCode::UNPROCESSABLE_ENTITY, code, &json!(field)),
            "{body}"
        );
        let (status, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/contacts/{id}"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = app
        .add_contact(
            &token,
            json!({"name": "A", "phone": "2135550100", "message": "hola", "email": "x"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let (_, got) = app
        .call(
            Method::GET,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(got, updated, "refused updates changed nothing");

    for n in 1..10 {
        let (status, _) = app.add_contact(&token, contact(n)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, body) = app.add_contact(&token, contact(11)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "contacts_limit")
    );
    let (_, list) = app.contacts(&token).await;
    assert_eq!(list["contacts"].as_array().map(Vec::len), Some(10));
    assert_eq!(list["contacts"][0]["id"], json!(id));

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/contacts/not-a-uuid",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn contacts_need_a_verified_device_and_stay_private() {
    let app = sqlite_app().await;
    let (status, _) = app.call(Method::GET, "/api/v1/contacts", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unverified = app.register("+12135550100").await;
    let (status, _) = app.add_contact(&unverified, contact(1)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let alice = app.person("+12135550111").await;
    let bob = app.person("+12135550122").await;
    let (_, created) = app.add_contact(&alice, contact(1)).await;
    let path = format!("/api/v1/contacts/{}", created["id"].as_str().expect("id"));
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = app.call(method, &path, Some(&bob), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
    let (status, _) = app
        .call(Method::PUT, &path, Some(&bob), Some(contact(2)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, still) = app.call(Method::GET, &path, Some(&alice), None).await;
    assert_eq!(still, created);
}

// ---- encryption at rest, through the API, on both backends --------------

async fn nothing_personal_at_rest(backend: &str) {
    let Some(mut app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.verified("+12135550177").await;
    let (status, _) = app
        .put_profile(&token, json!({"name": "Guadalupe Xochitl Ramirez", "home_state": "AZ", "home_county": "Maricopa", "cancel_pin": "48217395", "keyword": "socorro"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .add_contact(&token, json!({"name": "Esperanza Quetzalli", "phone": "+52 55 9876 5432", "language": "es", "message": "Llama a la licenciada Torres inmediatamente"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // (Coordinates arrive with alerts; the store suite covers sealing in general.)
    let needles = [
        "Guadalupe",
        "Xochitl",
        "Maricopa",
        "SOCORRO",
        "Esperanza",
        "Quetzalli",
        "licenciada Torres",
        "2135550177",
        "5598765432",
        // Eight digits: a four-digit PIN turns up by chance inside the dump's
        // timestamps, ids and hex (it did, once, in a PostgreSQL run).
        "48217395",
    ];
    let text = raw_database(&app);
    for needle in needles {
        assert!(
            !text.contains(needle),
            "{needle:?} is stored in plain text ({backend})"
        );
    }
    // The SMS log is the log gateway's plain-text contract, outside the database.
    assert!(
        std::fs::read_to_string(app.sms_log())
            .expect("log")
            .contains("+12135550177")
    );
    app.stop().await;
}

#[tokio::test]
async fn nothing_personal_at_rest_sqlite() {
    nothing_personal_at_rest("sqlite").await;
}

#[tokio::test]
async fn nothing_personal_at_rest_postgres() {
    nothing_personal_at_rest("postgres").await;
}

// ---- start-up checks ----------------------------------------------------

#[tokio::test]
async fn wrong_or_missing_key_is_a_clear_error() {
    let mut app = sqlite_app().await;
    app.verified("+12135550100").await;
    app.stop().await;
    let key_file = app.config.data_key_file();
    assert!(key_file.exists(), "the key was generated");
    assert!(
        !key_file.starts_with(&app.config.data_dir),
        "apart from the data directory"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // What a copy of the machine's disk would read: the data directory
        // and the database for the server's user only.
        let mode_of =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode_of(&app.config.data_dir), 0o700);
        assert_eq!(mode_of(&app.config.data_dir.join("avisa.db")), 0o600);
        assert_eq!(mode_of(&app.sms_log()), 0o600, "the log gateway's file");
        // A key others can read stops the start, saying what to do.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = App::build(app.config.clone())
            .await
            .err()
            .expect("a readable key refused");
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // Restarting on the same data works.
    App::build(app.config.clone())
        .await
        .expect("restart with the same key");

    let mut wrong = app.config.clone();
    wrong.data_key = avisa_core::crypto::DataKey::generate()
        .expect("key")
        .to_base64()
        .to_string()
        .into();
    let err = App::build(wrong).await.err().expect("wrong key refused");
    assert!(
        format!("{err:#}").contains("data key does not open this database"),
        "{err:#}"
    );
    // It says where the key was looked for: the key file actually used.
    assert!(
        format!("{err:#}").contains(&key_file.display().to_string()),
        "{err:#}"
    );

    std::fs::remove_file(&key_file).expect("remove key");
    let err = App::build(app.config.clone())
        .await
        .err()
        .expect("missing key refused");
    assert!(
        format!("{err:#}").contains("no key is configured"),
        "{err:#}"
    );
    assert!(
        !key_file.exists(),
        "no new key was generated over an existing database"
    );
}

#[tokio::test]
async fn a_bad_directory_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("consulates.csv");
    let mut text = avisa_core::directory::EMBEDDED_CSV.to_string();
    text.push_str("broken,Consulado Roto,consulado_general,X,CA,addr,,999,0,CA,src\n");
    std::fs::write(&file, text).expect("write");
    let mut config = test_config(&dir);
    config.directory = file;
    let err = App::build(config).await.err().expect("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("line 55") && msg.contains("latitude"), "{msg}");
}

#[tokio::test]
async fn a_replacement_directory_is_used() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("consulates.csv");
    std::fs::write(
        &file,
        "id,name_es,kind,city,state,address,phone,lat,lon,jurisdiction,source\n\
         solo,Consulado Único,consulado_general,Denver,CO,addr,,39.7,-105.0,CO;CA,test\n",
    )
    .expect("write");
    let mut config = test_config(&dir);
    config.directory = file;
    let app = TestApp::start(config, dir).await;
    let token = app.verified("+12135550100").await;
    // Only the replacement's states are accepted as home states.
    let mut body = profile_body();
    body["home_state"] = json!("TX");
    let (status, resp) = app.put_profile(&token, body).await;
    assert_eq!(
        (status, error_code(&resp)),
        (StatusCode::UNPROCESSABLE_ENTITY, "home_state_invalid")
    );
    let (status, _) = app.put_profile(&token, profile_body()).await;
    assert_eq!(status, StatusCode::OK);
}

/// What staff and contacts read must be what was written: a name or message
/// with a bidirectional override (that shows "…ZTIRF" as "FRITZ") or other
/// invisible formatting is refused, and nothing changes.
#[tokio::test]
async fn invisible_formatting_is_refused_in_names_and_messages() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let spoofed = "Ana \u{202E}ZTIRF";
    let (status, body) = app
        .add_contact(
            &token,
            json!({"name": spoofed, "phone": "+12135557001", "language": "es", "message": "Ayuda"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body), body["error"]["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_characters",
            Some("name")
        )
    );
    let (status, body) = app
        .add_contact(&token, json!({"name": "Ana", "phone": "+12135557001", "language": "es", "message": "Ayuda\u{200B}"}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_characters")
    );
    let mut profile = profile_body();
    profile["name"] = json!(spoofed);
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    let (status, body) = app.put_profile(&token, profile).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_characters")
    );
    let (_, contacts) = app.contacts(&token).await;
    assert_eq!(contacts["contacts"], json!([]), "nothing was added");
    let (_, me) = app.profile(&token).await;
    assert_eq!(me["name"], "María Pérez", "nothing was changed");
}

/// The metrics stay bounded whatever clients send: unknown methods fold
/// into one label value, unknown paths into "unmatched".
#[tokio::test]
async fn metrics_labels_are_bounded() {
    let app = sqlite_app().await;
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).expect("method");
        let path = format!("/nothing/{i}");
        let _ = app
            .client
            .request(method, format!("{}{path}", app.base))
            .send()
            .await
            .expect("request");
    }
    let metrics = app.text("/metrics").await;
    // (The recorder is shared by every test of this binary: the check is on
    // the label values, which no test can push past the known set.)
    let known = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other",
    ];
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("avisa_http_requests_total{"))
    {
        let method = line
            .split("method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a method label");
        assert!(known.contains(&method), "{line}");
    }
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(
        !metrics.contains("M17X"),
        "an unknown method became a label"
    );
}

/// `/metrics` is not public: without a token only a loopback scraper that
/// is not the proxy reads it; with one, only its bearer.
#[tokio::test]
async fn metrics_are_for_the_scraper_only() {
    let get = |app: &TestApp, auth: Option<&'static str>| {
        let mut req = app.client.get(format!("{}/metrics", app.base));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { req.send().await.expect("metrics").status() }
    };
    // Behind a proxy on this machine, every request comes from loopback:
    // without a token, none is the scraper.
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.limits.trusted_proxy = Some("127.0.0.1".parse().expect("ip"));
    let app = TestApp::start(config, dir).await;
    assert_eq!(get(&app, None).await, StatusCode::NOT_FOUND);

    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.metrics_token = "scrape-me-0123456789".to_string().into();
    let app = TestApp::start(config, dir).await;
    assert_eq!(get(&app, None).await, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, Some("Bearer wrong")).await, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, Some("Bearer scrape-me-0123456789")).await,
        StatusCode::OK
    );
}
