//! What one verified phone can make Avisa send: a loop of press-and-cancel
//! reaches the consulate every time and the contacts only within the limit;
//! the person's SMS budget holds over all their alerts; contacts only in the
//! countries the operator allows.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::alerts::person_with_contacts;
use crate::support::*;

const CONTACTS: [&str; 2] = ["+12135557000", "+12135557001"];

/// Alert SMS to `phone` (not the "I'm safe" that follows a cancel).
fn alert_sms_to(lines: &[Value], phone: &str) -> usize {
    lines
        .iter()
        .filter(|l| {
            let body = l["body"].as_str().unwrap_or("");
            l["to"] == phone
                && !body.contains("ha cancelado la alerta")
                && !body.contains("cancelled the earlier alert")
        })
        .count()
}

/// Press, cancel with the right PIN, twenty times within the window: every
/// press is raised and reaches a consulate, the contacts get at most the
/// limit's alerts (never one per press), and no press is refused.
async fn a_press_and_cancel_loop_does_not_pump_the_contacts(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contacts(&app, "+12135550100", 2).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, body) = press(
            &app,
            &token,
            json!({"idempotency_key": format!("pump-{i:04}")}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "never refused: {body}");
        let id = body["alert_id"].as_str().expect("id").to_string();
        let (status, body) = app.cancel(&token, &id, json!({"pin": "4821"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(id);
    }
    // Every alert is the consulate's to see.
    let store = avisa_server::open_store(&app.config).await.expect("store");
    for id in &ids {
        let view = store
            .alert(id.parse().expect("uuid"))
            .await
            .expect("read")
            .expect("alert");
        assert!(view.consulate_id.is_some(), "{id} reached no consulate");
    }
    store.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let lines = app.sms_lines();
    for phone in CONTACTS {
        let n = alert_sms_to(&lines, phone);
        assert!(n <= 5, "{phone} got {n} alerts from 20 presses");
    }
}

/// The person's hourly SMS budget, over all their alerts: two contacts and
/// a budget of 3 — the first press reaches both, the second (within the
/// alert limit) finds the budget spent and reaches the consulate and the
/// person only.
async fn the_persons_sms_budget_holds(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.limits.person_sms_per_hour = 3;
    let app = TestApp::start(config, dir).await;
    let token = person_with_contacts(&app, "+12135550100", 2).await;
    let (status, first) = press(&app, &token, json!({"idempotency_key": "budget-0001"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert!(first.get("limit_reached").is_none(), "{first}");
    let (status, second) = press(&app, &token, json!({"idempotency_key": "budget-0002"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["limit_reached"], true, "{second}");
    assert!(
        !second["recipients"]
            .as_array()
            .expect("recipients")
            .iter()
            .any(|r| r["kind"] == "contact"),
        "{second}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let lines = app.sms_lines();
    for phone in CONTACTS {
        assert_eq!(alert_sms_to(&lines, phone), 1, "{phone}");
    }
}

/// Six presses at once against a budget that pays for one: the budget is
/// taken where the alerts are written (the group commit), all or none, so
/// one press reaches the contacts and the other five go without them —
/// every press accepted, none refused.
async fn the_persons_sms_budget_holds_under_parallel_presses(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.limits.person_sms_per_hour = 3;
    let app = std::sync::Arc::new(TestApp::start(config, dir).await);
    let token = person_with_contacts(&app, "+12135550100", 2).await;
    let mut presses = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (app, token) = (app.clone(), token.clone());
        presses.spawn(async move {
            press(
                &app,
                &token,
                json!({"idempotency_key": format!("parallel-{i:04}")}),
            )
            .await
        });
    }
    let mut reached = 0;
    while let Some(done) = presses.join_next().await {
        let (status, body) = done.expect("press");
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let contacts = body["recipients"]
            .as_array()
            .expect("recipients")
            .iter()
            .filter(|r| r["kind"] == "contact")
            .count();
        match contacts {
            2 => reached += 1,
            0 => assert_eq!(body["limit_reached"], true, "{body}"),
            n => panic!("{n} contacts: {body}"),
        }
    }
    assert_eq!(reached, 1, "the budget paid for one press");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let lines = app.sms_lines();
    for phone in CONTACTS {
        assert_eq!(alert_sms_to(&lines, phone), 1, "{phone}");
    }
}

/// A contact's number outside `limits.contact_countries` is refused with
/// the reason, and nothing is saved; the operator may widen the list.
async fn contacts_only_in_the_allowed_countries(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = app.person("+12135550100").await;
    for phone in ["+25261234567", "+37121234567"] {
        let (status, body) = app
            .add_contact(
                &token,
                json!({"name": "Lejos", "phone": phone, "language": "es", "message": "Ayuda"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{phone}: {body}");
        assert_eq!(error_code(&body), "contact_country_not_allowed", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("MX")),
            "the reason names what is allowed: {body}"
        );
    }
    for phone in ["+525512345678", "+34612345678", "+5215512345678"] {
        let (status, body) = app
            .add_contact(
                &token,
                json!({"name": "Cerca", "phone": phone, "language": "es", "message": "Ayuda"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{phone}: {body}");
        let id = body["id"].as_str().expect("id");
        app.call(
            Method::DELETE,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            None,
        )
        .await;
    }
    let (_, list) = app.contacts(&token).await;
    assert_eq!(list["contacts"].as_array().map(Vec::len), Some(0));
}

/// Past the codes a minute may send without one, a registration must carry
/// a solved challenge: 429 `challenge_required` without it, 201 with it,
/// and a solution works once; a wrong or forged one is refused.
async fn registration_past_the_calm_needs_a_proof_of_work(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.limits.codes_without_challenge_per_minute = 1;
    config.limits.challenge_maxnumber = 2_000;
    let app = TestApp::start(config, dir).await;
    let register = |phone: &'static str, challenge: Option<Value>| {
        let app = &app;
        async move {
            let mut body = json!({"phone": phone, "country": "US"});
            if let Some(c) = challenge {
                body["challenge"] = c;
            }
            app.call(Method::POST, "/api/v1/devices", None, Some(body))
                .await
        }
    };
    let (s, body) = register("+12135550131", None).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = register("+12135550132", None).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "challenge_required"),
        "{body}"
    );

    let (s, c) = app
        .call(Method::GET, "/api/v1/devices/challenge", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let challenge: avisa_core::challenge::Challenge = serde_json::from_value(c).expect("challenge");
    assert_eq!(challenge.maxnumber, 2_000);
    let solved = avisa_core::challenge::solve(&challenge).expect("solvable");
    let solution = serde_json::to_value(&solved).expect("json");
    let (s, body) = register("+12135550132", Some(solution.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // Once only.
    let (s, body) = register("+12135550133", Some(solution.clone())).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "challenge_required"),
        "replayed: {body}"
    );
    // A wrong number, a forged signature.
    let (_, c) = app
        .call(Method::GET, "/api/v1/devices/challenge", None, None)
        .await;
    let challenge: avisa_core::challenge::Challenge = serde_json::from_value(c).expect("challenge");
    let mut wrong = avisa_core::challenge::solve(&challenge).expect("solvable");
    wrong.number = (wrong.number + 1) % 2_001;
    let (s, _) = register(
        "+12135550134",
        Some(serde_json::to_value(&wrong).expect("json")),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let mut forged = avisa_core::challenge::solve(&challenge).expect("solvable");
    forged.signature = "ab".repeat(32);
    let (s, _) = register(
        "+12135550134",
        Some(serde_json::to_value(&forged).expect("json")),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Only the two that passed sent a code.
    app.wait_sms_to("+12135550131", |_| true).await;
    app.wait_sms_to("+12135550132", |_| true).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let codes = app
        .sms_lines()
        .iter()
        .filter(|l| {
            l["body"]
                .as_str()
                .is_some_and(|b| b.contains("codigo") || b.contains("code"))
        })
        .count();
    assert_eq!(codes, 2);
}

/// The budget is spent in money, not messages: an SMS to Mexico costs two
/// units, to Guatemala three (`limits.price_units`). Two contacts there
/// cost five, past a budget of four that two US contacts would not reach.
async fn the_budget_counts_in_price_units(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.limits.person_sms_per_hour = 4;
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    for phone in ["+525512345678", "+50222123456"] {
        let (s, body) = app
            .add_contact(
                &token,
                json!({"name": "Familia", "phone": phone, "message": "Me detuvieron."}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = press(&app, &token, json!({"idempotency_key": "price-0001"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["limit_reached"], true, "five units past four: {body}");
    // Two contacts in the US cost two: within the same budget.
    let other = app.person("+12135550101").await;
    for phone in ["+12135557040", "+12135557041"] {
        let (s, body) = app
            .add_contact(
                &other,
                json!({"name": "Familia", "phone": phone, "message": "Me detuvieron."}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = press(&app, &other, json!({"idempotency_key": "price-0002"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert!(body.get("limit_reached").is_none(), "{body}");
}

on_both_backends!(
    the_budget_counts_in_price_units,
    registration_past_the_calm_needs_a_proof_of_work,
    a_press_and_cancel_loop_does_not_pump_the_contacts,
    the_persons_sms_budget_holds,
    the_persons_sms_budget_holds_under_parallel_presses,
    contacts_only_in_the_allowed_countries,
);
