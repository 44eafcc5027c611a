//! Gateways: Twilio (against a local server speaking its API), failover,
//! error classes, fairness under a rate cap, validity, receipts, signed
//! webhooks and the SMS trigger.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use avisa_server::Config;
use avisa_server::config::{Gateway, KannelSettings, LogSettings, TwilioSettings};
use avisa_testkit::{FakeTwilio, Reply};

use crate::support::*;

pub(crate) const SERVICE_FROM: &str = "+15005550006";

pub(crate) async fn twilio_config(
    dir: &tempfile::TempDir,
    backend: &str,
    fake: &FakeTwilio,
    gateways: &[&str],
) -> Option<Config> {
    let mut config = config_on(dir, backend).await?;
    config.sms.gateways = gateways
        .iter()
        .map(|g| match *g {
            "twilio" => Gateway::Twilio(TwilioSettings {
                base_url: fake.base_url.clone(),
                account_sid: fake.account_sid.clone(),
                auth_token: fake.auth_token.clone().into(),
                from: SERVICE_FROM.into(),
                timeout: Duration::from_secs(1),
                ..TwilioSettings::default()
            }),
            "log" => Gateway::Log(LogSettings::default()),
            other => panic!("no test set-up for the {other} gateway"),
        })
        .collect();
    config.dispatch.retry_base = Duration::from_millis(20);
    config.dispatch.retry_max = Duration::from_millis(200);
    config.dispatch.account_pause = Duration::from_millis(500);
    Some(config)
}

/// A complete person whose codes went through the fake Twilio.
pub(crate) async fn person_via_twilio(
    app: &TestApp,
    fake: &FakeTwilio,
    phone: &str,
    contacts: usize,
) -> String {
    let token = app.register(phone).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(m) = fake.accepted().into_iter().rev().find(|m| m.to == phone) {
            break m
                .body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .expect("code")
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no code arrived at the fake Twilio"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (s, _) = app
        .call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.put_profile(&token, profile_body()).await;
    assert_eq!(s, StatusCode::OK);
    for i in 0..contacts {
        let (s, _) = app
            .add_contact(&token, json!({"name": format!("C{i}"), "phone": format!("+1213555{:04}", 7000 + i), "language": "es", "message": format!("ayuda {i}")}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    token
}

pub(crate) async fn alert_json(app: &TestApp, token: &str, id: &str) -> Value {
    app.alert(token, id).await.1
}

/// Polls until the recipient of `kind` (first of its kind) has status `want`.
pub(crate) async fn wait_recipient(
    app: &TestApp,
    token: &str,
    id: &str,
    index: usize,
    want: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let alert = alert_json(app, token, id).await;
        let r = alert["recipients"][index].clone();
        if r["status"] == want {
            return r;
        }
        assert!(Instant::now() < deadline, "recipient {index} stuck at {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts a form to a Twilio webhook, signed with `token` (or not).
pub(crate) async fn twilio_webhook(
    app: &TestApp,
    path_and_query: &str,
    params: &[(&str, &str)],
    token: &str,
) -> StatusCode {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let url = format!("{}{path_and_query}", app.config.public_url);
    let signature = avisa_sms::twilio::signature(token, &url, &pairs);
    app.client
        .post(format!("{}{path_and_query}", app.base))
        .header("x-twilio-signature", signature)
        .form(&pairs)
        .send()
        .await
        .expect("webhook")
        .status()
}

async fn twilio_sends_and_signed_receipts_deliver(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    let (status, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "twilio-001"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let contact = wait_recipient(&app, &token, &id, 0, "sent").await;
    let rid = contact["id"].as_str().expect("recipient id").to_string();

    let sent = fake
        .accepted()
        .into_iter()
        .find(|m| m.to == "+12135557000")
        .expect("the contact's SMS");
    assert_eq!(sent.from.as_deref(), Some(SERVICE_FROM));
    assert!(
        sent.body
            .starts_with("Avisa: Maria Pérez pide ayuda:\nayuda 0\nSin ubicacion."),
        "{}",
        sent.body
    );
    assert_eq!(
        sent.reference.as_deref(),
        Some(rid.as_str()),
        "our id travels as the reference"
    );
    let callback = format!("{}/hooks/twilio/status?ref={rid}", app.base);
    assert_eq!(sent.status_callback.as_deref(), Some(callback.as_str()));

    let path = format!("/hooks/twilio/status?ref={rid}");
    let sid = sent.sid.clone().expect("sid");
    let delivered = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", fake.account_sid.as_str()),
    ];
    // A forged callback changes nothing.
    assert_eq!(
        twilio_webhook(&app, &path, &delivered, "not-the-token").await,
        StatusCode::FORBIDDEN
    );
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .form(&delivered)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "unsigned");
    assert_eq!(
        alert_json(&app, &token, &id).await["recipients"][0]["status"],
        "sent"
    );
    // The real one delivers; a late "failed" does not undo it.
    assert_eq!(
        twilio_webhook(&app, &path, &delivered, &fake.auth_token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alert_json(&app, &token, &id).await["recipients"][0]["status"],
        "delivered"
    );
    let failed = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    assert_eq!(
        twilio_webhook(&app, &path, &failed, &fake.auth_token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alert_json(&app, &token, &id).await["recipients"][0]["status"],
        "delivered"
    );

    // An undelivered receipt for the own-phone message marks it failed, with why.
    let own = alert_json(&app, &token, &id).await["recipients"][1].clone();
    let own_path = format!(
        "/hooks/twilio/status?ref={}",
        own["id"].as_str().expect("id")
    );
    wait_recipient(&app, &token, &id, 1, "sent").await;
    // Matched by the pair (our ref, the provider's id): a receipt naming
    // another message's id changes nothing.
    assert_eq!(
        twilio_webhook(&app, &own_path, &failed, &fake.auth_token).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alert_json(&app, &token, &id).await["recipients"][1]["status"],
        "sent",
        "another copy's receipt is ignored"
    );
    let own_sid = fake
        .accepted()
        .into_iter()
        .find(|m| m.reference.as_deref() == own["id"].as_str())
        .and_then(|m| m.sid)
        .expect("the own message's sid");
    let own_failed = [
        ("MessageSid", own_sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    assert_eq!(
        twilio_webhook(&app, &own_path, &own_failed, &fake.auth_token).await,
        StatusCode::NO_CONTENT
    );
    let own = alert_json(&app, &token, &id).await["recipients"][1].clone();
    assert_eq!(
        (own["status"].as_str(), own["reason"].as_str()),
        (Some("failed"), Some("twilio error 30003"))
    );
}

async fn twilio_error_classes_retry_or_fail(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 0).await;
    let before = fake.received().len();

    // 500, then 429 with Retry-After, then a timeout: each is retried, then it goes.
    fake.script([
        Reply::ServerError,
        Reply::TooManyRequests(1),
        Reply::Hang(Duration::from_secs(3)),
        Reply::Created,
    ]);
    let started = Instant::now();
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "retry-0001"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let own = wait_recipient(&app, &token, &id, 0, "sent").await;
    assert_eq!(own["reason"], Value::Null, "the reason clears once sent");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let answers: Vec<u16> = fake.received()[before..]
        .iter()
        .map(|r| r.answered)
        .collect();
    assert_eq!(
        answers,
        [500, 429, 0, 201],
        "the request that hung timed out and was retried"
    );

    // A 401 (our credentials) is the gateway's fault, not the message's:
    // the gateway goes out of service for `account_pause`, the console's
    // status bar says why, and the message goes once it takes it again.
    crate::console::add_staff(&app.config, "la.operator", "los-angeles", "operator").await;
    let staff = crate::console::login(&app, "la.operator").await;
    fake.script([Reply::Unauthorized, Reply::Unauthorized]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "account-0001"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = staff
            .call(Method::GET, "/api/v1/console/status", None)
            .await;
        let twilio = &status["gateways"][0];
        if twilio["up"] == false {
            assert_eq!(twilio["name"], "twilio");
            assert!(
                twilio["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("401")),
                "{status}"
            );
            assert!(twilio["since"].as_i64().is_some());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never went out: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let own = wait_recipient(&app, &token, &id, 0, "sent").await;
    assert_eq!(own["reason"], Value::Null, "{own}");
    let (_, status) = staff
        .call(Method::GET, "/api/v1/console/status", None)
        .await;
    assert_eq!(
        status["gateways"][0]["up"], true,
        "back once it took a message: {status}"
    );
    assert_eq!(status["gateways"][0]["problem"], Value::Null);

    // 400 (invalid number) is final: the recipient's, on every gateway.
    fake.script([Reply::InvalidNumber]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "perm-21211"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let r = wait_recipient(&app, &token, &id, 0, "failed").await;
    assert!(
        r["reason"].as_str().is_some_and(|s| s.contains("21211")),
        "{r}"
    );
}

async fn a_failing_gateway_fails_over_to_the_next(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio", "log"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    // Twilio refuses our credentials, then errors: both messages go by the next gateway.
    fake.script([Reply::Unauthorized, Reply::ServerError]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "failover-1"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    wait_recipient(&app, &token, &id, 0, "sent").await;
    wait_recipient(&app, &token, &id, 1, "sent").await;
    let logged: Vec<String> = app
        .sms_lines()
        .iter()
        .map(|l| l["to"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        logged.contains(&"+12135557000".to_string()),
        "the contact's message went by the log gateway: {logged:?}"
    );
    assert!(logged.contains(&"+12135550100".to_string()));
}

/// A 201 whose body cannot be read still means Twilio has the message: it
/// is "sent" (id unknown) and never sent again.
async fn an_accepted_answer_is_accepted_even_unreadable(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    fake.script([Reply::Unreadable]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "unreadable-1"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    wait_recipient(&app, &token, &id, 0, "sent").await;
    wait_recipient(&app, &token, &id, 1, "sent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_contact = fake
        .received()
        .into_iter()
        .filter(|m| m.to == "+12135557000")
        .count();
    assert_eq!(to_contact, 1, "one request, one SMS: never resent");
}

/// A contact's STOP (Twilio 21610) and an invalid number (21211) are final
/// on every gateway: never resent through the next one, the reason kept,
/// and the person told on the contact.
async fn a_stop_is_final_on_every_gateway(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio", "log"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    for (reply, key, reason) in [
        (Reply::InvalidNumber, "stop-final-1", "invalid_number"),
        (Reply::Unsubscribed, "stop-final-2", "opted_out"),
    ] {
        fake.script([reply]);
        let (_, alert) = app
            .call(
                Method::POST,
                "/api/v1/alerts",
                Some(&token),
                Some(json!({"idempotency_key": key})),
            )
            .await;
        let id = alert["alert_id"].as_str().expect("id").to_string();
        let r = wait_recipient(&app, &token, &id, 0, "failed").await;
        assert!(
            r["reason"].as_str().is_some_and(|s| s.starts_with(reason)),
            "{r}"
        );
        wait_recipient(&app, &token, &id, 1, "sent").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !app.sms_lines().iter().any(|l| l["to"] == "+12135557000"),
            "never resent through the log gateway: {:?}",
            app.sms_lines()
        );
    }
    let (_, list) = app.contacts(&token).await;
    let contact = &list["contacts"][0];
    assert_eq!(contact["blocked"], true, "{list}");
    // Saved again by the person: a STOP is the number's to undo, not theirs.
    let id = contact["id"].as_str().expect("id").to_string();
    let (s, saved) = app
        .call(
            Method::PUT,
            &format!("/api/v1/contacts/{id}"),
            Some(&token),
            Some(json!({"name": "C0", "phone": "+12135557000", "message": "ayuda 0"})),
        )
        .await;
    assert_eq!(
        (s, saved["blocked"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{saved}"
    );
    // The next alert: refused at send time on every gateway, with no
    // request to Twilio for that number and nothing through the log
    // gateway, whichever is up.
    let to_contact = |fake: &FakeTwilio| {
        fake.received()
            .into_iter()
            .filter(|m| m.to == "+12135557000")
            .count()
    };
    let asked_before = to_contact(&fake);
    let stopped = press_and_wait(&app, &token, "stop-final-3", "failed").await;
    assert_eq!(
        stopped["reason"].as_str(),
        Some(avisa_server::dispatch::OPTED_OUT),
        "{stopped}"
    );
    assert_eq!(to_contact(&fake), asked_before, "Twilio never asked");
    assert!(!app.sms_lines().iter().any(|l| l["to"] == "+12135557000"));

    // The contact texts START to the service number: messages again.
    let inbound = |body: &'static str, sid: &'static str| {
        let app = &app;
        let fake = &fake;
        async move {
            twilio_webhook(
                app,
                "/hooks/twilio/inbound",
                &[
                    ("From", "+12135557000"),
                    ("To", SERVICE_FROM),
                    ("Body", body),
                    ("MessageSid", sid),
                ],
                &fake.auth_token,
            )
            .await
        }
    };
    assert_eq!(inbound("Start", "SMstart1").await, StatusCode::OK);
    let (_, list) = app.contacts(&token).await;
    assert_eq!(list["contacts"][0]["blocked"], false, "{list}");
    press_and_wait(&app, &token, "stop-final-4", "sent").await;
    // And STOP (in Spanish) to the service number: recorded, unanswered,
    // and the next alert does not reach the number.
    let asked_before = to_contact(&fake);
    assert_eq!(inbound("BAJA", "SMstop1").await, StatusCode::OK);
    let stopped = press_and_wait(&app, &token, "stop-final-5", "failed").await;
    assert_eq!(
        stopped["reason"].as_str(),
        Some(avisa_server::dispatch::OPTED_OUT)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        to_contact(&fake),
        asked_before,
        "no neutral reply to a STOP, no alert after it"
    );
}

/// Presses as the person and waits for the first contact's status.
pub(crate) async fn press_and_wait(app: &TestApp, token: &str, key: &str, want: &str) -> Value {
    let (s, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(token),
            Some(json!({"idempotency_key": key})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    wait_recipient(app, token, &id, 0, want).await
}

async fn a_message_not_sent_in_its_validity_expires(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    config.sms.validity = Duration::from_secs(60);
    // The backoff would put the first retry past the validity: one last
    // try lands before the deadline instead, then it expires.
    config.dispatch.retry_base = Duration::from_secs(120);
    config.dispatch.retry_max = Duration::from_secs(120);
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 0).await;
    fake.set_default(Reply::ServerError);
    let before = fake.received().len();
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "expire-001"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    // The last try comes 2 s before the minute's end: wait it out.
    let deadline = Instant::now() + Duration::from_secs(75);
    let r = loop {
        let r = alert_json(&app, &token, &id).await["recipients"][0].clone();
        if r["status"] == "expired" {
            break r;
        }
        assert!(Instant::now() < deadline, "never expired: {r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rid = r["id"].as_str().expect("id");
    let tries: Vec<_> = fake.received()[before..]
        .iter()
        .filter(|m| m.reference.as_deref() == Some(rid))
        .cloned()
        .collect();
    assert_eq!(
        tries.len(),
        2,
        "the first try and one last before the deadline: {tries:?}"
    );
    // Twilio is told what remains of the validity, so it never holds the
    // message past it.
    assert!(
        tries[0]
            .validity_period
            .is_some_and(|v| (58..=60).contains(&v)),
        "{tries:?}"
    );
    assert!(
        tries[1].validity_period.is_some_and(|v| v <= 3),
        "{tries:?}"
    );
    assert!(tries[1].at.duration_since(tries[0].at) >= Duration::from_secs(50));
}

/// Three contacts for person `p`, whose numbers encode person and rank:
/// +1 310 555 0PC.
async fn ranked_contacts(app: &TestApp, token: &str, p: usize) {
    for c in 0..3 {
        let (s, _) = app
            .add_contact(token, json!({"name": "c", "phone": format!("+1310555{:04}", p * 10 + c), "message": "ayuda"}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
}

async fn under_a_rate_cap_every_alerts_first_messages_go_first(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.sms.gateways = vec![Gateway::Log(LogSettings {
        rate_per_second: 400,
    })];
    let app = TestApp::start_with(config, dir, false).await;
    let mut tokens = Vec::new();
    for p in 0..4 {
        let phone = format!("+1213555{:04}", 100 + p);
        let token = app.register(&phone).await;
        app.dispatcher.drain().await.expect("drain");
        let code = app.last_code(&phone).await;
        app.call(
            Method::POST,
            "/api/v1/devices/verify",
            Some(&token),
            Some(json!({"code": code})),
        )
        .await;
        app.put_profile(&token, profile_body()).await;
        ranked_contacts(&app, &token, p).await;
        tokens.push(token);
    }
    let codes = app.sms_lines().len();
    for round in 0..5 {
        for token in &tokens {
            let (s, _) = app
                .call(
                    Method::POST,
                    "/api/v1/alerts",
                    Some(token),
                    Some(json!({"idempotency_key": format!("fair-{round}-key")})),
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED);
        }
    }
    app.dispatcher.drain().await.expect("drain");
    let lines = app.sms_lines();
    let sent: Vec<String> = lines[codes..]
        .iter()
        .map(|l| l["to"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(sent.len(), 20 * 4);
    let rank_of = |to: &str| {
        to.strip_prefix("+1310555")
            .and_then(|d| d.parse::<u32>().ok())
            .map(|n| n % 10)
    };
    let last_first = sent
        .iter()
        .rposition(|t| rank_of(t) == Some(0))
        .expect("first contacts");
    let first_third = sent
        .iter()
        .position(|t| rank_of(t) == Some(2))
        .expect("third contacts");
    assert!(
        last_first < first_third,
        "a third contact went before some alert's first: {sent:?}"
    );
}

async fn a_later_message_waiting_for_its_rate_slot_gives_way_to_a_new_alert(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    // 500 ms between sends: time for a press to land while a message waits
    // for its slot, even on a busy machine.
    config.sms.gateways = vec![Gateway::Log(LogSettings { rate_per_second: 2 })];
    let app = TestApp::start(config, dir).await;
    let mut tokens = Vec::new();
    for p in 0..2 {
        let token = app.person(&format!("+1213555{:04}", 100 + p)).await;
        ranked_contacts(&app, &token, p).await;
        tokens.push(token);
    }
    let before = app.sms_lines().len();
    let accepted = |(s, _): (StatusCode, Value)| assert_eq!(s, StatusCode::ACCEPTED);
    accepted(press(&app, &tokens[0], json!({"idempotency_key": "first-alert"})).await);
    // Its first contact, second contact and own phone (ranks 0, 1, 1) go;
    // its third contact is claimed next, with nothing better queued, and
    // waits for its slot. Another alert is accepted meanwhile.
    app.wait_sms(before + 3).await;
    accepted(press(&app, &tokens[1], json!({"idempotency_key": "second-alert"})).await);
    let lines = app.wait_sms(before + 8).await;
    let sent: Vec<&str> = lines[before..]
        .iter()
        .map(|l| l["to"].as_str().unwrap_or(""))
        .collect();
    let at = |to: &str| sent.iter().position(|t| *t == to).expect("sent");
    assert!(
        at("+13105550010") < at("+13105550002"),
        "the new alert's first contact must go before the first alert's third: {sent:?}"
    );
    assert_eq!(
        sent.iter().filter(|t| **t == "+13105550002").count(),
        1,
        "given way, then sent once: {sent:?}"
    );
}

async fn a_graceful_stop_leaves_nothing_waiting_for_its_lease(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    // `dir` holds the data across the restart; each app gets a spare.
    let spare = || tempfile::tempdir().expect("dir");
    let mut app = TestApp::start(config.clone(), spare()).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 2).await;
    let codes = fake.accepted().len();
    // A slow provider keeps the first alert's round out while the second is
    // accepted: its messages wait, handed over or claimed, when the server
    // is told to stop.
    fake.set_default(Reply::Slow(Duration::from_millis(800)));
    for key in ["stop-first", "stop-second"] {
        let (s, _) = press(&app, &token, json!({"idempotency_key": key})).await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    app.stop().await;
    // Restarted on the same data: what the stopped server held went back to
    // the queue, so it goes now, not when a 30 s lease runs out; what it
    // sent was recorded, so it does not go twice.
    fake.set_default(Reply::Created);
    let _app = TestApp::start(config, spare()).await;
    fake.wait_accepted(codes + 6, Duration::from_secs(10)).await;
    // Anything sent twice would follow at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = fake.accepted();
    let mut to: Vec<&str> = sent[codes..].iter().map(|m| m.to.as_str()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "+12135550100",
            "+12135550100",
            "+12135557000",
            "+12135557000",
            "+12135557001",
            "+12135557001"
        ],
        "each of the two alerts' three messages, once"
    );
}

async fn the_sms_keyword_raises_an_alert_and_nothing_else_does(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    // A previous alert left a location: the SMS alert uses it.
    let (_, first) = app.call(Method::POST, "/api/v1/alerts", Some(&token), Some(json!({"idempotency_key": "before-sms", "location": {"lat": 41.8781, "lon": -87.6298}}))).await;
    let first_id = first["alert_id"].as_str().expect("id").to_string();
    wait_recipient(&app, &token, &first_id, 0, "sent").await;
    fake.wait_accepted(3, Duration::from_secs(5)).await;
    let before = fake.accepted().len();

    let inbound = |from: &'static str, body: &'static str, sid: &'static str| {
        [
            ("From", from),
            ("To", SERVICE_FROM),
            ("Body", body),
            ("MessageSid", sid),
            ("AccountSid", "AC00000000000000000000000000000001"),
        ]
    };
    assert_eq!(
        twilio_webhook(
            &app,
            "/hooks/twilio/inbound",
            &inbound("+12135550100", "  auxilio ", "SMinbound1"),
            &fake.auth_token
        )
        .await,
        StatusCode::OK
    );
    // The same webhook delivered twice raises one alert.
    assert_eq!(
        twilio_webhook(
            &app,
            "/hooks/twilio/inbound",
            &inbound("+12135550100", "  auxilio ", "SMinbound1"),
            &fake.auth_token
        )
        .await,
        StatusCode::OK
    );
    let got = fake.wait_accepted(before + 2, Duration::from_secs(5)).await;
    let new: Vec<_> = got[before..].to_vec();
    let contact = new
        .iter()
        .find(|m| m.to == "+12135557000")
        .expect("the contact was alerted");
    assert!(
        contact.body.contains("mlat=41.87810&mlon=-87.62980"),
        "the last known location: {}",
        contact.body
    );
    assert!(
        new.iter()
            .any(|m| m.to == "+12135550100" && m.body.contains("tu alerta ha sido enviada")),
        "the confirmation is the reply"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.accepted().len(),
        before + 2,
        "no second alert for a replayed webhook"
    );

    // A wrong keyword and an unknown sender raise nothing and get the same reply.
    let before = fake.accepted().len();
    assert_eq!(
        twilio_webhook(
            &app,
            "/hooks/twilio/inbound",
            &inbound("+12135550100", "hola", "SMinbound2"),
            &fake.auth_token
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        twilio_webhook(
            &app,
            "/hooks/twilio/inbound",
            &inbound("+12135550999", "auxilio", "SMinbound3"),
            &fake.auth_token
        )
        .await,
        StatusCode::OK
    );
    let got = fake.wait_accepted(before + 2, Duration::from_secs(5)).await;
    let replies: Vec<_> = got[before..].to_vec();
    assert_eq!(replies.len(), 2);
    assert_eq!(
        replies[0].body, replies[1].body,
        "the reply says nothing about registration"
    );
    assert!(replies[0].body.contains("no ha activado ninguna alerta"));
    assert!(
        replies
            .iter()
            .all(|m| m.to == "+12135550100" || m.to == "+12135550999")
    );

    // A forged inbound SMS raises nothing.
    let before = fake.received().len();
    assert_eq!(
        twilio_webhook(
            &app,
            "/hooks/twilio/inbound",
            &inbound("+12135550100", "auxilio", "SMinbound4"),
            "forged"
        )
        .await,
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.received().len(), before);
}

async fn kannel_webhooks_check_their_signature_and_token(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    // Inbound SMS through Kannel, replies through the log gateway first.
    config.sms.gateways.push(Gateway::Kannel(KannelSettings {
        username: "avisa".into(),
        inbound_token: "inbound-secret".to_string().into(),
        ..KannelSettings::default()
    }));
    let app = TestApp::start(config, dir).await;
    let id = uuid::Uuid::now_v7();
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/hooks/kannel/dlr?id={id}&sig=00&status=1"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::GET,
            "/hooks/kannel/inbound?token=wrong&from=%2B12135550100&text=auxilio",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::GET,
            "/hooks/kannel/inbound?token=inbound-secret&from=%2B12135550999&text=auxilio",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply = app
        .wait_sms_to("+12135550999", |b| {
            b.contains("no ha activado ninguna alerta")
        })
        .await;
    assert_eq!(reply["to"], "+12135550999");
}

/// A receipt that arrives while its message is back in the queue (the send
/// timed out; the provider, which has it, is still to be asked) is kept and
/// applied once the look-up records the send: delivered, not "sin
/// confirmación".
async fn a_receipt_between_the_timeout_and_the_look_up_is_kept(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    // A wide window between the timeout and the next try (the look-up).
    config.dispatch.retry_base = Duration::from_secs(2);
    config.dispatch.retry_max = Duration::from_secs(2);
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 0).await;
    let before = fake.received().len();
    // Taken on arrival, answered after the client's 1 s timeout.
    fake.script([Reply::Slow(Duration::from_secs(3))]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "kept-receipt-1"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let rid: uuid::Uuid = alert["recipients"][0]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let store = avisa_server::open_store(&app.config).await.expect("store");
    // Until the send has timed out and the message is back in the queue.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = store.message(rid).await.expect("read").expect("message");
        if status == avisa_core::OutboxStatus::Queued && fake.received().len() > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never back in the queue: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let taken = fake.received()[before..]
        .iter()
        .find(|m| m.reference.as_deref() == Some(&rid.to_string()))
        .cloned()
        .expect("the provider has it");
    let sid = taken.sid.clone().expect("sid");
    let status = twilio_webhook(
        &app,
        &format!("/hooks/twilio/status?ref={rid}"),
        &[("MessageSid", &sid), ("MessageStatus", "delivered")],
        &fake.auth_token,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = store.message(rid).await.expect("read").expect("message");
    assert_eq!(
        status,
        avisa_core::OutboxStatus::Queued,
        "the receipt waits"
    );
    // The look-up finds it at the provider: recorded sent, then delivered.
    let r = wait_recipient(&app, &token, &id, 0, "delivered").await;
    assert_ne!(r["unconfirmed"], true, "{r}");
    assert_eq!(
        fake.received()[before..]
            .iter()
            .filter(|m| m.to == "+12135550100")
            .count(),
        1,
        "asked, not sent again"
    );
    store.close().await;
}

/// A message in doubt on Twilio (the request hung) whose look-up fails is
/// not sent again — neither by Twilio nor by the next gateway — while it
/// cannot be asked; once Twilio answers the look-up (it does not have it),
/// it is sent once.
async fn a_failed_look_up_sends_nothing_twice(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio", "log"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 0).await;
    let before = fake.received().len();
    fake.script([Reply::Hang(Duration::from_secs(2))]);
    fake.fail_lists(true);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "unasked-1"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let rid: uuid::Uuid = alert["recipients"][0]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let store = avisa_server::open_store(&app.config).await.expect("store");
    // In doubt (back in the queue after the hang), then asked in vain for
    // a while: several tries, nothing sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.received().len() == before
        || store.message(rid).await.expect("read").expect("message").0
            != avisa_core::OutboxStatus::Queued
    {
        assert!(Instant::now() < deadline, "never in doubt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let to_person = |fake: &FakeTwilio| {
        fake.received()[before..]
            .iter()
            .filter(|m| m.to == "+12135550100")
            .count()
    };
    assert_eq!(
        to_person(&fake),
        1,
        "not sent again while it cannot be asked"
    );
    assert!(
        !app.sms_lines().iter().any(|l| l["to"] == "+12135550100"),
        "nor by the next gateway"
    );
    fake.fail_lists(false);
    wait_recipient(&app, &token, &id, 0, "sent").await;
    let copies: Vec<_> = fake.received()[before..]
        .iter()
        .filter(|m| m.to == "+12135550100")
        .map(|m| m.answered)
        .collect();
    assert_eq!(copies, vec![0, 201], "the hung request, then one copy");
    store.close().await;
}

/// With its only gateway taken out (our account refused), `/readyz` says so
/// (and the metric), yet stays 200: every instance shares the gateway, and a
/// 503 would have the load balancer refuse presses the console must get.
/// Once the pause ends, it says "ready" again.
async fn no_gateway_that_can_send_is_not_ready(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    config.dispatch.account_pause = Duration::from_secs(2);
    let app = TestApp::start(config, dir).await;
    let (s, _) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    fake.script([Reply::Unauthorized]);
    let token = app.register("+12135550100").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, body) = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        if body["status"] == "no SMS gateway can send" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said its only gateway is paused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        app.text("/metrics")
            .await
            .contains("avisa_gateway_up{gateway=\"twilio\"} 0")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.call(Method::GET, "/readyz", None, None).await.1["status"] != "ready" {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(token);
}

/// A contact's STOP texted through Kannel: recorded for the number, never
/// answered, and the next alert reaches it on no gateway (here the log
/// gateway, which would send anything); START through Kannel undoes it.
async fn a_stop_through_kannel_blocks_every_gateway(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.sms.gateways.push(Gateway::Kannel(KannelSettings {
        username: "avisa".into(),
        inbound_token: "inbound-secret".to_string().into(),
        ..KannelSettings::default()
    }));
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    let (s, _) = app
        .add_contact(
            &token,
            json!({"name": "Tía", "phone": "+12135557050", "language": "es", "message": "Ayuda"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let text = |body: &str, id: &str| {
        format!(
            "/hooks/kannel/inbound?token=inbound-secret&from=%2B12135557050&text={body}&id={id}"
        )
    };
    let (s, _) = app
        .call(Method::GET, &text("Stop", "k-stop"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let stopped = press_and_wait(&app, &token, "kannel-stop-1", "failed").await;
    assert_eq!(
        stopped["reason"].as_str(),
        Some(avisa_server::dispatch::OPTED_OUT)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !app.sms_lines().iter().any(|l| l["to"] == "+12135557050"),
        "no reply to the STOP, no alert after it: {:?}",
        app.sms_lines()
    );
    let (s, _) = app
        .call(Method::GET, &text("ALTA", "k-start"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    press_and_wait(&app, &token, "kannel-stop-2", "sent").await;
}

/// Replies to texts that raised nothing are bounded: one a day per sender,
/// one per provider message id, none to a premium-rate or foreign number,
/// none after five misses in an hour; the right keyword from the person's
/// phone still raises the alert, and its confirmation says how to cancel.
async fn inbound_replies_are_bounded_and_the_keyword_always_works(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.sms.gateways.push(Gateway::Kannel(KannelSettings {
        username: "avisa".into(),
        inbound_token: "inbound-secret".to_string().into(),
        ..KannelSettings::default()
    }));
    let app = TestApp::start(config, dir).await;
    app.person("+12135550100").await;
    let text = |from: &str, body: &str, id: &str| {
        format!(
            "/hooks/kannel/inbound?token=inbound-secret&from={}&text={body}&id={id}",
            from.replace('+', "%2B")
        )
    };
    let send = |path: String| {
        let app = &app;
        async move {
            let (status, body) = app.call(Method::GET, &path, None, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    for (n, id) in ["u1", "u2", "u3"].iter().enumerate() {
        send(text("+12135550999", &format!("hola{n}"), id)).await;
    }
    send(text("+12135550998", "hola", "same-id")).await;
    send(text("+12135550998", "hola", "same-id")).await;
    send(text("+19005550100", "hola", "p1")).await;
    send(text("+447911123456", "hola", "uk1")).await;
    // The person mistypes six times, then gets it right.
    for n in 0..6 {
        send(text(
            "+12135550100",
            &format!("auxlio{n}"),
            &format!("m{n}"),
        ))
        .await;
    }
    send(text("+12135550100", "auxilio", "right")).await;
    let confirmation = app
        .wait_sms_to("+12135550100", |b| b.contains("tu alerta ha sido enviada"))
        .await;
    assert!(
        confirmation["body"]
            .as_str()
            .is_some_and(|b| b.contains("si no lo enviaste, cancelala en la app con tu PIN")),
        "{confirmation}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = app.sms_lines();
    let replies_to = |to: &str| {
        lines
            .iter()
            .filter(|l| {
                l["to"] == to
                    && l["body"]
                        .as_str()
                        .is_some_and(|b| b.contains("no ha activado ninguna alerta"))
            })
            .count()
    };
    assert_eq!(replies_to("+12135550999"), 1, "one reply a day per sender");
    assert_eq!(replies_to("+12135550998"), 1, "one message id handled once");
    assert_eq!(replies_to("+19005550100"), 0, "no reply to premium rate");
    assert_eq!(replies_to("+447911123456"), 0, "no reply abroad");
    assert_eq!(
        replies_to("+12135550100"),
        1,
        "the person's misses: one reply"
    );
}

/// "Sent" is not "delivered": a message the provider took and never
/// confirmed is shown "sin confirmación", and an alert message is sent once
/// more by the next gateway (once, marked a possible duplicate); one with a
/// receipt is left alone.
async fn silence_after_sent_is_unconfirmed_and_resent_once(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio", "log"]).await else {
        return;
    };
    config.sms.receipt_timeout = Duration::from_secs(1);
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "silence-001"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    wait_recipient(&app, &token, &id, 0, "sent").await;
    let own = wait_recipient(&app, &token, &id, 1, "sent").await;
    // The person's own phone confirms; the contact's copy stays silent.
    let own_sent = fake
        .accepted()
        .into_iter()
        .rev()
        .find(|m| m.to == "+12135550100")
        .expect("the own phone's SMS");
    let path = format!(
        "/hooks/twilio/status?ref={}",
        own["id"].as_str().expect("id")
    );
    let sid = own_sent.sid.expect("sid");
    let sent = [("MessageSid", sid.as_str()), ("MessageStatus", "sent")];
    assert_eq!(
        twilio_webhook(&app, &path, &sent, &fake.auth_token).await,
        StatusCode::NO_CONTENT
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let contact = loop {
        let a = alert_json(&app, &token, &id).await;
        let c = a["recipients"][0].clone();
        if c["unconfirmed"] == true && app.sms_lines().iter().any(|l| l["to"] == "+12135557000") {
            break c;
        }
        assert!(Instant::now() < deadline, "never unconfirmed: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(contact["resent"], true, "{contact}");
    // Sent once more, by the next gateway; never a third time: the resend
    // too stays silent past the timeout, and the silence job looks twice
    // more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.settled("receipts").await;
    let to_contact = |m: &&avisa_testkit::Received| m.to == "+12135557000";
    assert_eq!(fake.accepted().iter().filter(to_contact).count(), 1);
    let by_log = app
        .sms_lines()
        .into_iter()
        .filter(|l| l["to"] == "+12135557000")
        .count();
    assert_eq!(by_log, 1, "one more copy, by the log gateway");
    let a = alert_json(&app, &token, &id).await;
    assert_eq!(a["recipients"][0]["status"], "sent");
    assert_eq!(a["recipients"][0]["unconfirmed"], true, "{a}");
    // The confirmed one is not touched.
    assert_eq!(a["recipients"][1]["unconfirmed"], Value::Null, "{a}");
    assert_eq!(a["recipients"][1]["resent"], Value::Null, "{a}");
}

/// A provider that takes a message and answers too late: the send is in
/// doubt, and before sending again the gateway asks Twilio's message list,
/// finds it, and does not send a second copy. One that never took it is
/// sent again.
async fn a_timeout_after_acceptance_is_asked_not_resent(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio", "log"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 0).await;
    let before = fake.received().len();
    // Taken, answered after the client's 1 s timeout.
    fake.script([Reply::Slow(Duration::from_secs(2))]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "doubt-001"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let own = wait_recipient(&app, &token, &id, 0, "sent").await;
    let copies: Vec<_> = fake.received()[before..]
        .iter()
        .filter(|m| m.to == "+12135550100")
        .cloned()
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "asked, not sent again: {:?}",
        copies.iter().map(|c| c.answered).collect::<Vec<_>>()
    );
    assert!(
        app.sms_lines()
            .iter()
            .all(|l| l["to"] != "+12135550100"
                || !l["body"].as_str().unwrap_or("").contains("ALERTA")),
        "no second copy by the next gateway either"
    );
    // The message is recorded with the provider's id, as if answered.
    let rid: uuid::Uuid = own["id"].as_str().expect("id").parse().expect("uuid");
    let store = avisa_server::open_store(&app.config).await.expect("store");
    let (_, _, provider) = store
        .message(rid)
        .await
        .expect("read")
        .expect("the message");
    store.close().await;
    assert_eq!(provider, copies[0].sid, "the id found in the list");

    // A request the provider never took: asked, not found, sent again.
    let before = fake.received().len();
    fake.script([Reply::Hang(Duration::from_secs(2))]);
    let (_, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "doubt-002"})),
        )
        .await;
    let id = alert["alert_id"].as_str().expect("id").to_string();
    wait_recipient(&app, &token, &id, 0, "sent").await;
    let answers: Vec<u16> = fake.received()[before..]
        .iter()
        .map(|r| r.answered)
        .collect();
    assert_eq!(
        answers,
        [0, 201],
        "sent again once the provider said it has nothing"
    );
}

on_both_backends!(
    a_timeout_after_acceptance_is_asked_not_resent,
    silence_after_sent_is_unconfirmed_and_resent_once,
    inbound_replies_are_bounded_and_the_keyword_always_works,
    twilio_sends_and_signed_receipts_deliver,
    twilio_error_classes_retry_or_fail,
    a_failing_gateway_fails_over_to_the_next,
    a_stop_is_final_on_every_gateway,
    a_stop_through_kannel_blocks_every_gateway,
    no_gateway_that_can_send_is_not_ready,
    a_failed_look_up_sends_nothing_twice,
    a_receipt_between_the_timeout_and_the_look_up_is_kept,
    an_accepted_answer_is_accepted_even_unreadable,
    a_message_not_sent_in_its_validity_expires,
    under_a_rate_cap_every_alerts_first_messages_go_first,
    a_later_message_waiting_for_its_rate_slot_gives_way_to_a_new_alert,
    a_graceful_stop_leaves_nothing_waiting_for_its_lease,
    the_sms_keyword_raises_an_alert_and_nothing_else_does,
    kannel_webhooks_check_their_signature_and_token,
);
