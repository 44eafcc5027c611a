//! What the phone app needs from the server: its files, its configuration,
//! the PIN check, the message preview, and deleting a person's data.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_app_is_served_from_the_binary_with_a_strict_policy() {
    let app = sqlite_app().await;
    let mut total = 0;
    for path in avisa_server::web::asset_paths() {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        // The policy where it governs: the page and the worker.
        if path == "/" {
            assert_eq!(
                resp.headers()["permissions-policy"],
                "geolocation=(self), camera=(), microphone=(), payment=(), usb=(), interest-cohort=()",
                "the app asks where the phone is, for itself only"
            );
            assert!(
                resp.headers().get("strict-transport-security").is_none(),
                "no HSTS over plain http"
            );
        }
        if path == "/" || path == "/sw.js" {
            let csp = resp.headers()["content-security-policy"]
                .to_str()
                .expect("csp")
                .to_string();
            assert!(
                csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
                "{path}: {csp}"
            );
        }
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        total += resp.bytes().await.expect("body").len();
    }
    // The whole first load, uncompressed, is under the 150 KB budget for the
    // compressed one: a 2G connection can afford it.
    assert!(total < 150 * 1024, "the app weighs {total} bytes");
    let index = app.text("/").await;
    assert!(index.contains("<html lang=\"es\">"), "Spanish first");
    // The worker's cache is named for this version of the app's files.
    let worker = app.text("/sw.js").await;
    assert!(
        worker.contains(&format!("avisa-shell-{}", avisa_server::web::APP_VERSION)),
        "{worker}"
    );
    assert!(
        !index.contains("http://") && !index.contains("https://"),
        "nothing loaded from elsewhere"
    );
    let manifest: serde_json::Value = app
        .client
        .get(format!("{}/manifest.webmanifest", app.base))
        .send()
        .await
        .expect("m")
        .json()
        .await
        .expect("json");
    assert_eq!(manifest["display"], "standalone");
    assert!(
        manifest["icons"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["sizes"] == "512x512"))
    );
    let (status, body) = app.call(Method::GET, "/nothing.js", None, None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = app.call(Method::POST, "/", None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_public_configuration() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.sms.service_number = "+1 500 555 0006".into();
    let app = TestApp::start(config, dir).await;
    let (status, body) = app.call(Method::GET, "/api/v1/config", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"service_number": "+1 500 555 0006", "service_number_display": "+1 500-555-0006", "ciam_phone": "+1 520 623 7874", "max_contacts": 10, "max_message_segments": 3, "countdown_seconds": 5})
    );
}

#[tokio::test]
async fn the_pin_check_counts_towards_the_lockout() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (status, _) = app.check_pin(&token, json!({"pin": "4821"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.check_pin(&token, json!({"pin": "48"})).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "pin_invalid")
    );
    for _ in 0..4 {
        let (status, body) = app.check_pin(&token, json!({"pin": "0000"})).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::FORBIDDEN, "pin_incorrect")
        );
    }
    let (status, body) = app.check_pin(&token, json!({"pin": "0000"})).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "pin_locked")
    );
    let (status, _) = app.check_pin(&token, json!({"pin": "4821"})).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "locked even for the right PIN"
    );
}

#[tokio::test]
async fn the_preview_is_exactly_what_the_contact_gets() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (status, body) = app
        .call(Method::POST, "/api/v1/contacts/preview", Some(&token), Some(json!({"message": "Hola mamá", "language": "es", "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 15}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body["body"].as_str().expect("body");
    // "mamá" makes the SMS UCS-2: the system line keeps its accents then.
    assert!(text.starts_with("Avisa: María Pérez pide ayuda:\nHola mamá\nUbicación: https://www.openstreetmap.org/?mlat=34.05050&mlon=-118.25510 (+/-15 m) a las "), "{text}");
    assert!(text.ends_with(" hora del Pacífico."));
    // A contact in Puebla reads the time in central Mexico, named as there;
    // a number not yet readable leaves the person's own zone.
    for (phone, country, zone) in [
        ("222 123 4567", "MX", " hora del centro de México."),
        ("+52 664 123 4567", "", " hora de Baja California."),
        ("12", "MX", " hora del Pacífico."),
    ] {
        let (status, body) = app
            .call(Method::POST, "/api/v1/contacts/preview", Some(&token), Some(json!({"message": "Hola mamá", "language": "es", "phone": phone, "country": country})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let text = body["body"].as_str().expect("body");
        assert!(text.ends_with(zone), "{phone}: {text}");
    }
    assert_eq!(
        (body["encoding"].as_str(), body["sample_location"].as_bool()),
        (Some("UCS-2"), Some(false))
    );
    // Without a location: an example near the person's consulate, said so.
    let (_, body) = app
        .call(
            Method::POST,
            "/api/v1/contacts/preview",
            Some(&token),
            Some(json!({"message": "Hi", "language": "en"})),
        )
        .await;
    assert_eq!(body["sample_location"], true);
    assert!(
        body["body"].as_str().is_some_and(
            |b| b.starts_with("Avisa: Maria Pérez needs help:\nHi\nLocation: https://www.openstreetmap.org/?mlat=34.05220")
        ),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/contacts/preview",
            Some(&token),
            Some(json!({"message": "x", "location": {"lat": 95, "lon": 0}})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "location_invalid")
    );
}

#[tokio::test]
async fn deleting_my_data_needs_the_pin_and_no_active_alert() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    let (s, _) = app
        .add_contact(
            &token,
            json!({"name": "Mamá", "phone": "2135550177", "message": "ayuda"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (status, body) = app
        .call(
            Method::DELETE,
            "/api/v1/profile",
            Some(&token),
            Some(json!({"pin": "1111"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "pin_incorrect")
    );
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "before-delete"})),
        )
        .await;
    let (status, body) = app
        .call(
            Method::DELETE,
            "/api/v1/profile",
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "alert_active")
    );
    let id = alert["alert_id"].as_str().expect("id");
    let (status, _) = app.cancel(&token, id, json!({"pin": "4821"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::DELETE,
            "/api/v1/profile",
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Everything went with it: the token names no device any more.
    let (status, _) = app.contacts(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let text = raw_database(&app);
    assert!(
        !text.contains("Mam"),
        "nothing of the person is left in plain text either"
    );
}

/// Behind https, HSTS on every answer; the console's page may not ask for
/// the position; no API answer is kept in a cache.
#[tokio::test]
async fn headers_for_a_seized_or_shared_browser() {
    // Served here over http, but published behind a TLS proxy.
    avisa_sms::http::init_tls();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = test_config(&dir);
    config.public_url = "https://avisa.example.org".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = avisa_server::App::build(config).await.expect("build");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(avisa_server::serve(listener, app, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for path in ["/", "/console", "/api/v1/config", "/healthz"] {
        let resp = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(
            resp.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
        if path == "/console" {
            assert!(
                resp.headers()["permissions-policy"]
                    .to_str()
                    .expect("text")
                    .starts_with("geolocation=()"),
                "{path}"
            );
        }
        if path.starts_with("/api/") {
            assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        }
    }
    let _ = stop.send(());
    let _ = server.await;
}
