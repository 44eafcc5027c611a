//! SMS budgets: verification codes, the one SMS anyone can make Avisa send,
//! are paid for per number, per client address, per country and in all,
//! counted so that a limit holds under parallel requests; costly ranges and
//! other countries get no code at all.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

async fn register_from(
    app: &TestApp,
    phone: &str,
    from: Option<&str>,
) -> (StatusCode, Option<u64>, Value) {
    let mut req = app
        .client
        .post(format!("{}/api/v1/devices", app.base))
        .json(&json!({"phone": phone}));
    if let Some(addr) = from {
        req = req.header("x-forwarded-for", format!("10.9.9.9, {addr}"));
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

async fn budgets_hold_under_parallel_requests(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.limits.trusted_proxy = Some("127.0.0.1".parse().expect("ip"));
    config.limits.codes_per_address_per_hour = 4;
    config.limits.codes_per_hour = 12;
    let app = std::sync::Arc::new(TestApp::start(config, dir).await);

    // 50 parallel registrations of one number, each from its own address:
    // exactly the number's 3.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                register_from(&app, "+12135550100", Some(&format!("198.51.100.{i}"))).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let (status, retry, body) = t.await.expect("task");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(error_code(&body), "rate_limited");
                let retry = retry.expect("Retry-After");
                assert!((1..=3600).contains(&retry), "the true time left: {retry}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 3, "the per-number budget held");
    assert_eq!(
        app.wait_sms(3)
            .await
            .iter()
            .filter(|l| l["to"] == "+12135550100")
            .count(),
        3
    );

    // One address: 4 codes to 4 numbers, then 429; another address goes on.
    for n in 0..4 {
        let (status, _, body) =
            register_from(&app, &format!("+1213555020{n}"), Some("203.0.113.7")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, _, _) = register_from(&app, "+12135550210", Some("203.0.113.7")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address's budget"
    );
    // 3 + 4 codes so far of the 12 in all: 5 more from fresh addresses.
    for n in 0..5 {
        let (status, _, body) = register_from(
            &app,
            &format!("+1213555030{n}"),
            Some(&format!("192.0.2.{n}")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, _, _) = register_from(&app, "+12135550400", Some("192.0.2.200")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the hour's budget in all"
    );
}

on_both_backends!(budgets_hold_under_parallel_requests);

#[tokio::test]
async fn costly_numbers_and_other_countries_get_no_code() {
    let app = sqlite_app().await;
    for (phone, why) in [
        ("+1 900 555 0100", "premium rate"),
        ("+1 800 555 0100", "toll-free"),
        ("+881 6 1234 5678", "satellite"),
        ("+44 7911 123456", "a country codes do not go to"),
        ("+502 5512 3456", "a country codes do not go to"),
    ] {
        let (status, body) = app
            .call(
                Method::POST,
                "/api/v1/devices",
                None,
                Some(json!({"phone": phone})),
            )
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "phone_not_allowed"),
            "{phone}: {why}: {body}"
        );
    }
    assert!(app.sms_lines().is_empty(), "no code went anywhere");
    // A Mexican number gets its code; a contact in Guatemala is fine, a
    // premium-rate contact is not.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/devices",
            None,
            Some(json!({"phone": "+52 55 1234 5678"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = app.person("+12135550100").await;
    let contact = |phone: &str| json!({"name": "Tía", "phone": phone, "message": "Me detuvieron."});
    let (status, body) = app.add_contact(&token, contact("+502 5512 3456")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.add_contact(&token, contact("+1 900 555 0100")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "phone_not_allowed")
    );
}
