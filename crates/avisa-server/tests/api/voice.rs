//! A press from any phone: the voice line (Twilio Voice's webhooks, signed,
//! with the form fields Twilio documents) and "AYUDA <number> <PIN>" by SMS
//! from another phone — on both backends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use avisa_testkit::FakeTwilio;

use crate::console::{add_staff, login};
use crate::gateways::{SERVICE_FROM, person_via_twilio, twilio_config};
use crate::support::*;

const FACILITY: &str = "+16265550199";

/// Posts a signed voice webhook the way Twilio does; returns the status and
/// the TwiML.
pub(crate) async fn voice(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    token: &str,
) -> (StatusCode, String) {
    let pairs: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let url = format!("{}{path}", app.config.public_url);
    let signature = avisa_sms::twilio::signature(token, &url, &pairs);
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .header("x-twilio-signature", signature)
        .form(&pairs)
        .send()
        .await
        .expect("voice webhook");
    let status = resp.status();
    if status == StatusCode::OK {
        assert_eq!(resp.headers()["content-type"], "text/xml");
    }
    (status, resp.text().await.expect("body"))
}

/// The fields Twilio posts on a call (and on a `<Gather>`'s action).
fn call_fields<'a>(
    sid: &'a str,
    from: &'a str,
    digits: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("AccountSid", "AC00000000000000000000000000000001"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", sid),
        ("CallStatus", "in-progress"),
        ("Direction", "inbound"),
        ("From", from),
        ("To", SERVICE_FROM),
    ];
    if let Some(d) = digits {
        f.push(("Digits", d));
        f.push(("FinishedOnKey", "#"));
    }
    f
}

/// The next step's URL a TwiML `<Gather>` names, as a path and query.
fn action(twiml: &str, app: &TestApp) -> String {
    let start = twiml.find("action=\"").expect("a Gather with an action") + 8;
    let end = start + twiml[start..].find('"').expect("closing quote");
    twiml[start..end]
        .replace("&amp;", "&")
        .strip_prefix(&app.config.public_url)
        .expect("an absolute URL on public_url")
        .to_string()
}

/// One call: number, then PIN; returns the last TwiML.
async fn dial(
    app: &TestApp,
    token: &str,
    sid: &str,
    from: &str,
    number: &str,
    pin: &str,
) -> String {
    let (status, start) = voice(
        app,
        "/hooks/twilio/voice",
        &call_fields(sid, from, None),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{start}");
    assert!(
        start.contains("<Gather") && start.contains("language=\"es-MX\""),
        "{start}"
    );
    assert!(
        start.contains("marque el número de teléfono"),
        "Spanish first: {start}"
    );
    let (status, ask_pin) = voice(
        app,
        &action(&start, app),
        &call_fields(sid, from, Some(number)),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ask_pin}");
    assert!(ask_pin.contains("su PIN"), "{ask_pin}");
    let (status, end) = voice(
        app,
        &action(&ask_pin, app),
        &call_fields(sid, from, Some(pin)),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{end}");
    end
}

async fn the_voice_line_raises_the_alert_from_any_phone(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    add_staff(&app.config, "la.operator", "los-angeles", "operator").await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 2).await;
    // A press earlier left a location; then the phone was taken.
    let (s, first) = press(
        &app,
        &token,
        json!({"idempotency_key": "before-call", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let (s, _) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/alerts/{}/cancel",
                first["alert_id"].as_str().expect("id")
            ),
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = fake.accepted().len();
    let auth = fake.auth_token.clone();

    // Unsigned: refused, nothing said.
    let resp = app
        .client
        .post(format!("{}/hooks/twilio/voice", app.base))
        .form(&call_fields("CAforged", FACILITY, None))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The right number (dialled as people do, 10 digits) and PIN.
    let end = dial(&app, &auth, "CA0001", FACILITY, "2135550100", "4821").await;
    assert!(end.contains("Su alerta fue enviada a 2 contactos"), "{end}");
    assert!(end.contains("<Hangup/>"), "{end}");
    let got = fake.wait_accepted(before + 2, Duration::from_secs(5)).await;
    let new = &got[before..];
    for c in ["+12135557000", "+12135557001"] {
        assert!(new.iter().any(|m| m.to == c), "{c} alerted: {new:?}");
    }
    assert!(
        !new.iter().any(|m| m.to == "+12135550100"),
        "nothing to the person's own phone, which may be in other hands"
    );
    // The same step delivered again (Twilio retries) raises nothing more.
    let (_, ask_pin) = voice(
        &app,
        "/hooks/twilio/voice/number?try=0",
        &call_fields("CA0001", FACILITY, Some("2135550100")),
        &auth,
    )
    .await;
    let (_, again) = voice(
        &app,
        &action(&ask_pin, &app),
        &call_fields("CA0001", FACILITY, Some("4821")),
        &auth,
    )
    .await;
    assert!(
        again.contains("Su alerta fue enviada a 2 contactos"),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_first = fake.accepted().len();

    // The console sees a call, from the facility's number, with the last location.
    let console = login(&app, "la.operator").await;
    let (s, queue) = console.queue().await;
    assert_eq!(s, StatusCode::OK, "{queue}");
    let item = queue
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["source"] == "call")
        .expect("the call's alert in the queue")
        .clone();
    let (s, detail) = console
        .call(
            Method::GET,
            &format!(
                "/api/v1/console/alerts/{}",
                item["alert_id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    assert_eq!(detail["caller"], FACILITY);
    assert_eq!(detail["source"], "call");
    assert!(
        detail["location"]["lat"]
            .as_f64()
            .is_some_and(|l| (l - 34.0505).abs() < 1e-6),
        "{detail}"
    );

    // Wrong pairs: an unknown number and a wrong PIN get the same words.
    let unknown = dial(&app, &auth, "CA0002", "+13105550111", "3105559999", "4821").await;
    let wrong = dial(&app, &auth, "CA0003", "+13105550112", "2135550100", "1111").await;
    let words = |t: &str| t.replace("CA0002", "").replace("CA0003", "");
    assert!(
        unknown.contains("El número o el PIN no son correctos"),
        "{unknown}"
    );
    assert_eq!(
        words(&unknown),
        words(&wrong),
        "the words never tell whether a number is registered"
    );
    // Four more wrong PINs for the person, from four phones: the fifth locks.
    for (i, from) in [
        "+13105550113",
        "+13105550114",
        "+13105550115",
        "+13105550116",
    ]
    .iter()
    .enumerate()
    {
        let end = dial(
            &app,
            &auth,
            &format!("CA001{i}"),
            from,
            "2135550100",
            "0000",
        )
        .await;
        assert!(end.contains("no son correctos"), "{end}");
    }
    // Locked: even the right PIN raises nothing now, and says the same.
    let locked = dial(&app, &auth, "CA0020", "+13105550117", "2135550100", "4821").await;
    assert!(
        locked.contains("El número o el PIN no son correctos"),
        "{locked}"
    );
    let (s, body) = app.check_pin(&token, json!({"pin": "4821"})).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "pin_locked"),
        "one lockout for every door"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.accepted().len(),
        after_first,
        "wrong and locked pairs sent nothing"
    );

    // One caller walking through numbers is stopped after 10 tries an hour.
    let mut last = String::new();
    for i in 0..11 {
        last = dial(
            &app,
            &auth,
            &format!("CA01{i:02}"),
            "+13105550150",
            &format!("31055500{i:02}"),
            "1234",
        )
        .await;
    }
    assert!(
        last.contains("Demasiados intentos desde este teléfono"),
        "{last}"
    );
    assert!(
        last.contains("5 2 0 6 2 3 7 8 7 4"),
        "the 24-hour line, digit by digit: {last}"
    );

    // A number Twilio could not read: asked again, and after three, goodbye.
    let (_, start) = voice(
        &app,
        "/hooks/twilio/voice",
        &call_fields("CA0300", FACILITY, None),
        &auth,
    )
    .await;
    let mut step = action(&start, &app);
    for round in 0..3 {
        let (_, next) = voice(
            &app,
            &step,
            &call_fields("CA0300", FACILITY, Some("12")),
            &auth,
        )
        .await;
        if round < 2 {
            assert!(
                next.contains("No recibimos un número completo") && next.contains("<Gather"),
                "{next}"
            );
            step = action(&next, &app);
        } else {
            assert!(
                next.contains("<Hangup/>") && !next.contains("<Gather"),
                "{next}"
            );
        }
    }
    // A PIN step whose sealed number belongs to another call is refused.
    let (_, ask_pin) = voice(
        &app,
        "/hooks/twilio/voice/number?try=0",
        &call_fields("CA0400", FACILITY, Some("2135550100")),
        &auth,
    )
    .await;
    let (_, other) = voice(
        &app,
        &action(&ask_pin, &app),
        &call_fields("CA0401", FACILITY, Some("4821")),
        &auth,
    )
    .await;
    assert!(
        other.contains("Pasó demasiado tiempo") && other.contains("<Hangup/>"),
        "{other}"
    );
}

async fn help_by_sms_and_the_duress_pin_from_another_phone(backend: &str) {
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    add_staff(&app.config, "la.operator", "los-angeles", "operator").await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    let mut profile = profile_body();
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    profile["duress_pin"] = json!("9999");
    let (s, body) = app.put_profile(&token, profile).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let auth = fake.auth_token.clone();
    let before = fake.accepted().len();

    // By SMS from a borrowed phone, with the duress PIN: raised, flagged.
    let sms = |body: &'static str, sid: &'static str| {
        [
            ("From", "+13235550142"),
            ("To", SERVICE_FROM),
            ("Body", body),
            ("MessageSid", sid),
            ("AccountSid", "AC00000000000000000000000000000001"),
        ]
    };
    for _ in 0..2 {
        let (s, _) = voice(
            &app,
            "/hooks/twilio/inbound",
            &sms("AYUDA (213) 555-0100 9999", "SMhelp1"),
            &auth,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
    let got = fake.wait_accepted(before + 2, Duration::from_secs(5)).await;
    let new = &got[before..];
    assert!(
        new.iter().any(|m| m.to == "+12135557000"),
        "the contact: {new:?}"
    );
    let reply = new
        .iter()
        .find(|m| m.to == "+13235550142")
        .expect("the borrowed phone is told");
    assert!(
        reply.body.contains("alerta enviada a 1 contactos"),
        "{}",
        reply.body
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.accepted().len(),
        before + 2,
        "a webhook delivered twice raises and replies once"
    );

    let console = login(&app, "la.operator").await;
    let (_, queue) = console.queue().await;
    let item = &queue[0];
    assert_eq!(item["source"], "sms");
    let (_, detail) = console
        .call(
            Method::GET,
            &format!(
                "/api/v1/console/alerts/{}",
                item["alert_id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(detail["caller"], "+13235550142");
    assert!(
        detail["duress_at"].is_i64(),
        "the duress PIN flags it: {detail}"
    );

    // The person's history shows what their phone saw: a press of theirs,
    // not the alert raised from another phone (whoever forces the PIN out
    // of them reads this screen too).
    let (s, pressed) = press(
        &app,
        &token,
        json!({"idempotency_key": "history-press", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{pressed}");
    let (s, history) = app
        .call(Method::GET, "/api/v1/history", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let alerts = history["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{history}");
    assert_eq!(alerts[0]["alert_id"], pressed["alert_id"]);
    assert_eq!(
        alerts[0]["recipients"][0]["name"], "C0",
        "with the PIN, names"
    );
    let (s, body) = app
        .call_without_unlock(Method::GET, "/api/v1/history", Some(&token), None)
        .await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::FORBIDDEN, "pin_required")
    );

    // A wrong PIN by SMS: the neutral reply, the same as for any text.
    let before = fake.accepted().len();
    let (s, _) = voice(
        &app,
        "/hooks/twilio/inbound",
        &sms("AYUDA 2135550100 1234", "SMhelp2"),
        &auth,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let got = fake.wait_accepted(before + 1, Duration::from_secs(5)).await;
    assert!(
        got[before].body.contains("no ha activado ninguna alerta"),
        "{}",
        got[before].body
    );
}

on_both_backends!(
    the_voice_line_raises_the_alert_from_any_phone,
    help_by_sms_and_the_duress_pin_from_another_phone
);
