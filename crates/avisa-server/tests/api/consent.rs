//! Consent and delivery beyond the send: what the carriers' rules want
//! answered (a STOP's one confirmation, HELP), on the gateway that does not
//! answer them itself; when a contact blocked Avisa, as the person sees it;
//! a message sent past the in-doubt window marked "posible duplicado"; a
//! gateway out for our credentials back as soon as a probe says so.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use avisa_server::config::{Gateway, KannelSettings};
use avisa_testkit::{FakeTwilio, Reply};

use crate::gateways::{
    SERVICE_FROM, person_via_twilio, twilio_config, twilio_webhook, wait_recipient,
};
use crate::support::*;

const CONTACT: &str = "+12135557050";

async fn kannel_text(app: &TestApp, text: &str, id: &str) -> (StatusCode, String) {
    let r = app
        .client
        .get(format!(
            "{}/hooks/kannel/inbound?token=inbound-secret&from=%2B12135557050&text={text}&id={id}",
            app.base
        ))
        .send()
        .await
        .expect("inbound");
    (r.status(), r.text().await.expect("body"))
}

/// Through Kannel, which answers nothing itself: a STOP gets one
/// confirmation (in the webhook's answer, which smsbox sends back), however
/// often it is sent; HELP gets the operator's text, once a day; neither
/// gets the neutral reply, and nothing goes through the outbox. The person
/// sees since when the contact blocked Avisa.
async fn kannel_stop_is_confirmed_once_and_help_answered(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.sms.gateways.push(Gateway::Kannel(KannelSettings {
        username: "avisa".into(),
        inbound_token: "inbound-secret".to_string().into(),
        ..KannelSettings::default()
    }));
    config.sms.help_text =
        "Avisa de la Red de Apoyo: ayuda@example.org. Responde ALTO para no recibir mas.".into();
    let app = TestApp::start(config, dir).await;
    let token = app.person("+12135550100").await;
    let (s, _) = app
        .add_contact(
            &token,
            json!({"name": "Tía", "phone": CONTACT, "language": "es", "message": "Ayuda"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let before = avisa_core::now_millis();

    let (s, answer) = kannel_text(&app, "Baja", "k-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(answer, avisa_core::messages::opt_out_confirmed());
    let (_, again) = kannel_text(&app, "STOP", "k-2").await;
    assert_eq!(again, "", "one confirmation, not one per STOP");
    let (_, help) = kannel_text(&app, "ayuda", "k-3").await;
    assert!(help.starts_with("Avisa de la Red de Apoyo"), "{help}");
    let (_, help_again) = kannel_text(&app, "INFO", "k-4").await;
    assert_eq!(help_again, "", "HELP is answered once a day");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !app.sms_lines().iter().any(|l| l["to"] == CONTACT),
        "no neutral reply, nothing by the outbox: {:?}",
        app.sms_lines()
    );

    let (_, list) = app.contacts(&token).await;
    let c = &list["contacts"][0];
    assert_eq!(c["blocked"], true);
    let since = c["blocked_since"].as_i64().expect("since when");
    assert!(since >= before && since <= avisa_core::now_millis(), "{c}");

    // START undoes it (no answer of ours: none is due), and the time goes.
    let (_, answer) = kannel_text(&app, "Alta", "k-5").await;
    assert_eq!(answer, "");
    let (_, list) = app.contacts(&token).await;
    assert_eq!(list["contacts"][0]["blocked"], false);
    assert!(list["contacts"][0]["blocked_since"].is_null());
}

/// Through Twilio, which confirms STOP and answers HELP itself: Avisa
/// records the STOP and adds nothing (no TwiML, no outbox reply), and a
/// HELP Twilio recognised gets nothing of ours either.
async fn twilio_answers_stop_and_help_itself(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let _token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    let before = fake.received().len();
    for (i, (body, kind)) in [("HELP", Some("HELP")), ("info", None), ("stop", None)]
        .into_iter()
        .enumerate()
    {
        let sid = format!("SMin{i:030}");
        let mut params = vec![
            ("From", CONTACT),
            ("To", SERVICE_FROM),
            ("Body", body),
            ("MessageSid", sid.as_str()),
        ];
        if let Some(kind) = kind {
            params.push(("OptOutType", kind));
        }
        let s = twilio_webhook(&app, "/hooks/twilio/inbound", &params, &fake.auth_token).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<_> = fake.received()[before..]
        .iter()
        .filter(|m| m.to == CONTACT)
        .map(|m| m.body.clone())
        .collect();
    assert!(sent.is_empty(), "Twilio answers these, not us: {sent:?}");
    let store = avisa_server::open_store(&app.config).await.expect("store");
    let phone = avisa_core::PhoneNumber::parse(CONTACT).expect("phone");
    assert_eq!(
        store.opted_out(&[&phone]).await.expect("read").len(),
        1,
        "the STOP is recorded"
    );
    store.close().await;
}

/// A message whose first try may have reached Twilio, and Twilio cannot be
/// asked (its message list fails): past the in-doubt window it goes, and
/// the person and the console are told it may arrive twice.
async fn sent_past_the_window_is_a_possible_duplicate(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    config.dispatch.in_doubt_window = Duration::from_millis(1500);
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 0).await;
    let before = fake.received().len();
    fake.script([Reply::Hang(Duration::from_secs(2))]);
    fake.fail_lists(true);
    let (s, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "duplicate-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let r = wait_recipient(&app, &token, &id, 0, "sent").await;
    assert_eq!(r["resent"], true, "{r}");
    let copies: Vec<u16> = fake.received()[before..]
        .iter()
        .filter(|m| m.to == "+12135550100")
        .map(|m| m.answered)
        .collect();
    assert_eq!(
        copies,
        vec![0, 201],
        "the hung try, then the one past the window"
    );
}

/// Our Twilio credentials refused (the token was rotated at Twilio), then
/// accepted again: the press waits for the gateway, and goes as soon as a
/// probe finds the credentials work, not after the whole account pause.
async fn a_credential_pause_ends_when_a_probe_succeeds(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    config.dispatch.account_pause = Duration::from_secs(60);
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    fake.set_auth_token("rotated-elsewhere");
    let (s, alert) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "probe-press-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    // Refused: out of service.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fake.received().iter().any(|m| m.answered == 401) {
        assert!(Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.set_auth_token(&fake.auth_token);
    // wait_recipient gives up after 15 s: well within the 60 s pause.
    wait_recipient(&app, &token, &id, 0, "sent").await;
}

/// The webhooks' contract: a required field missing is 422 — after the
/// signature or token is checked (403 first), so a stranger learns nothing.
async fn webhooks_refuse_a_missing_required_field(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    config.sms.gateways.push(Gateway::Kannel(KannelSettings {
        username: "avisa".into(),
        inbound_token: "inbound-secret".to_string().into(),
        ..KannelSettings::default()
    }));
    let app = TestApp::start(config, dir).await;
    let status = "/hooks/twilio/status?ref=00000000-0000-0000-0000-000000000000";
    let no_status = [("MessageSid", "SM00000000000000000000000000000001")];
    assert_eq!(
        twilio_webhook(&app, status, &no_status, "not-the-token").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        twilio_webhook(&app, status, &no_status, &fake.auth_token).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let no_from = [
        ("Body", "hola"),
        ("MessageSid", "SM00000000000000000000000000000002"),
    ];
    assert_eq!(
        twilio_webhook(&app, "/hooks/twilio/inbound", &no_from, &fake.auth_token).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    for (token, want) in [
        ("wrong", StatusCode::FORBIDDEN),
        ("inbound-secret", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = app
            .client
            .get(format!(
                "{}/hooks/kannel/inbound?token={token}&from=%2B12135557050",
                app.base
            ))
            .send()
            .await
            .expect("inbound");
        assert_eq!(r.status(), want, "token {token}");
    }
}

on_both_backends!(
    webhooks_refuse_a_missing_required_field,
    kannel_stop_is_confirmed_once_and_help_answered,
    twilio_answers_stop_and_help_itself,
    sent_past_the_window_is_a_possible_duplicate,
    a_credential_pause_ends_when_a_probe_succeeds,
);
