//! Check-in timers, run by the server: a deadline that passes without a
//! check-out raises the person's alert exactly once — after a restart, and
//! with two servers on one database too; a check-out stops it; the duress
//! PIN checks out on the phone and raises the alert in silence — on both
//! backends.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::*;

/// RFC 3339 for `ms` milliseconds from now.
fn at(ms: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::milliseconds(ms))
        .format(&Rfc3339)
        .expect("format")
}

/// A person with one contact; returns their token.
async fn person_with_contact(app: &TestApp, phone: &str, contact: &str) -> String {
    let token = app.person(phone).await;
    let (status, body) = app
        .add_contact(
            &token,
            json!({"name": "Mamá", "phone": contact, "message": "Me detuvieron."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    token
}

async fn schedule(app: &TestApp, token: &str, deadline_in_ms: i64) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/checkins",
            Some(token),
            Some(json!({
                "appointment_at": at(-60_000),
                "deadline": at(deadline_in_ms),
                "place": "Oficina de ICE, 300 N Los Angeles St",
                "note": "Cita de revisión; mi número A está en la carpeta azul.",
                "location": {"lat": 34.0533, "lon": -118.2420, "accuracy_m": 30}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The SMS to `phone` that say a check-in was missed.
fn missed_to(lines: &[Value], phone: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["to"] == phone)
        .filter(|l| {
            l["body"]
                .as_str()
                .is_some_and(|b| b.contains("Cita no confirmada"))
        })
        .count()
}

async fn checkout(app: &TestApp, token: &str, timer: &Value, pin: &str) -> (StatusCode, Value) {
    let path = format!(
        "/api/v1/checkins/{}/checkout",
        timer["id"].as_str().expect("id")
    );
    app.call(
        Method::POST,
        &path,
        Some(token),
        Some(json!({ "pin": pin })),
    )
    .await
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A deadline that passes raises one alert with the planned place; a
/// check-out before the deadline raises nothing; bad timers are refused.
async fn a_missed_deadline_raises_one_alert_and_a_check_out_none(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contact(&app, "+12135550100", "+12135557000").await;

    // Refused, with the field at fault, and nothing scheduled.
    for (body, code) in [
        (
            json!({"appointment_at": at(-3_600_000), "deadline": at(-60_000)}),
            "deadline_past",
        ),
        (
            json!({"appointment_at": at(7_200_000), "deadline": at(3_600_000)}),
            "deadline_before_appointment",
        ),
        (
            json!({"appointment_at": "mañana a las 9", "deadline": at(3_600_000)}),
            "time_invalid",
        ),
    ] {
        let (status, refused) = app
            .call(Method::POST, "/api/v1/checkins", Some(&token), Some(body))
            .await;
        assert_eq!(
            (status, error_code(&refused)),
            (StatusCode::UNPROCESSABLE_ENTITY, code)
        );
    }
    // The plan is personal: without the PIN's unlock, nothing.
    let (status, _) = app
        .call_without_unlock(Method::GET, "/api/v1/checkins", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let kept = schedule(&app, &token, 2_000).await;
    let stopped = schedule(&app, &token, 2_500).await;
    assert_eq!(kept["state"], "scheduled");
    assert_eq!(kept["place"], "Oficina de ICE, 300 N Los Angeles St");
    // A wrong PIN: 403, and the timer keeps running.
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/checkins/{}/checkout",
                kept["id"].as_str().expect("id")
            ),
            Some(&token),
            Some(json!({"pin": "0000"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, out) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/checkins/{}/checkout",
                stopped["id"].as_str().expect("id")
            ),
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(
        (status, out["state"].as_str()),
        (StatusCode::OK, Some("checked_out"))
    );

    wait_until("the missed check-in's SMS", || {
        missed_to(&app.sms_lines(), "+12135557000") >= 1
    })
    .await;
    // A second alert (the checked-out timer, a repeat) would show within
    // two more rounds of the job.
    app.settled("checkins").await;
    let lines = app.sms_lines();
    assert_eq!(
        missed_to(&lines, "+12135557000"),
        1,
        "one alert: {lines:#?}"
    );
    let sms = lines
        .iter()
        .find(|l| l["to"] == "+12135557000")
        .and_then(|l| l["body"].as_str())
        .expect("the contact's SMS");
    assert!(
        sms.starts_with("Avisa: Maria Pérez pide ayuda:\nMe detuvieron.\nCita no confirmada (Oficina de ICE, 300 N Los Angeles St). Ubicacion: https://www.openstreetmap.org/?mlat=34.05330&mlon=-118.24200"),
        "{sms}"
    );
    let (_, list) = app
        .call(Method::GET, "/api/v1/checkins", Some(&token), None)
        .await;
    let states: Vec<&str> = list["checkins"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["checked_out", "fired"], "newest first");
    let fired = &list["checkins"][1];
    let (status, alert) = app
        .call(
            Method::GET,
            &format!(
                "/api/v1/alerts/{}",
                fired["alert_id"].as_str().expect("alert id")
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, alert["state"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    // Ten at once at most.
    for _ in 0..10 {
        schedule(&app, &token, 3_600_000).await;
    }
    let (status, refused) = app
        .call(
            Method::POST,
            "/api/v1/checkins",
            Some(&token),
            Some(json!({"appointment_at": at(0), "deadline": at(3_600_000)})),
        )
        .await;
    assert_eq!(
        (status, error_code(&refused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "checkins_limit")
    );
}

/// Scheduled on one server, due while it is down: the next one raises it,
/// once; with two servers on one database, one alert between them.
async fn a_timer_survives_a_restart_and_fires_once_across_servers(backend: &str) {
    let data = tempfile::tempdir().expect("dir");
    let Some(config) = config_on(&data, backend).await else {
        return;
    };
    let mut first = TestApp::start(config.clone(), tempfile::tempdir().expect("dir")).await;
    let token = person_with_contact(&first, "+12135550100", "+12135557000").await;
    schedule(&first, &token, 1_500).await;
    first.stop().await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    // Two servers on the database (on SQLite, one after the other).
    let second = TestApp::start(config.clone(), tempfile::tempdir().expect("dir")).await;
    let third = if backend == "postgres" {
        Some(TestApp::start(config.clone(), tempfile::tempdir().expect("dir")).await)
    } else {
        None
    };
    // Both servers have one configuration, so one SMS log: whichever
    // dispatcher sends it, it is there.
    assert_eq!(
        third.as_ref().map(|t| t.sms_log()),
        third.as_ref().map(|_| second.sms_log())
    );
    let missed = || missed_to(&second.sms_lines(), "+12135557000");
    wait_until("the missed check-in's SMS", || missed() >= 1).await;
    second.settled("checkins").await;
    if let Some(third) = &third {
        third.settled("checkins").await;
    }
    assert_eq!(missed(), 1, "one alert between the servers");
    drop(third);
}

/// The duress PIN checks out on the phone exactly as the PIN does, and the
/// alert goes in silence: the contact hears, the person's phone does not,
/// the consulate sees it flagged.
async fn a_duress_check_out_answers_like_one_and_raises_the_alert(backend: &str) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let token = person_with_contact(&app, "+12135550100", "+12135557000").await;
    let (status, _) = app
        .put_profile(&token, json!({"name": "María Pérez", "home_state": "ca", "keyword": "auxilio", "duress_pin": "9999"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let real = schedule(&app, &token, 3_600_000).await;
    let forced = schedule(&app, &token, 3_600_000).await;
    let (s1, a) = checkout(&app, &token, &real, "4821").await;
    let (s2, b) = checkout(&app, &token, &forced, "9999").await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&a), keys(&b), "the same answer's shape");
    assert_eq!(
        (a["state"].as_str(), b["state"].as_str()),
        (Some("checked_out"), Some("checked_out"))
    );
    assert_eq!(b["alert_id"], Value::Null, "nothing on the phone tells");
    wait_until("the forced check-out's alert", || {
        missed_to(&app.sms_lines(), "+12135557000") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let lines = app.sms_lines();
    assert!(
        !lines.iter().any(|l| l["to"] == "+12135550100"
            && l["body"].as_str().is_some_and(|b| b.contains("alerta"))),
        "no SMS about the alert on the person's own phone: {lines:#?}"
    );
    // The phone's view stays "checked out" later too.
    let (_, view) = app
        .call(
            Method::GET,
            &format!("/api/v1/checkins/{}", forced["id"].as_str().expect("id")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (view["state"].as_str(), &view["alert_id"]),
        (Some("checked_out"), &Value::Null)
    );
}

/// "SALI <PIN>" from the person's phone checks out the next timer: a wrong
/// PIN is told and counts, the right one checks out, the duress PIN checks
/// out the same and raises the alert in silence; each answered once.
async fn a_check_out_by_sms_needs_the_pin(backend: &str) {
    use crate::gateways::{SERVICE_FROM, person_via_twilio, twilio_config};
    let fake = avisa_testkit::FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(config) = twilio_config(&dir, backend, &fake, &["twilio"]).await else {
        return;
    };
    let app = TestApp::start(config, dir).await;
    let token = person_via_twilio(&app, &fake, "+12135550100", 1).await;
    let mut profile = profile_body();
    profile.as_object_mut().map(|p| p.remove("cancel_pin"));
    profile["duress_pin"] = json!("9999");
    let (s, body) = app.put_profile(&token, profile).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let first = schedule(&app, &token, 60 * 60_000).await;
    let second = schedule(&app, &token, 2 * 60 * 60_000).await;
    let auth = fake.auth_token.clone();
    let sms = |body: &'static str, sid: &'static str| {
        [
            ("From", "+12135550100"),
            ("To", SERVICE_FROM),
            ("Body", body),
            ("MessageSid", sid),
            ("AccountSid", "AC00000000000000000000000000000001"),
        ]
    };
    let answer = |n: usize| {
        let fake = &fake;
        async move {
            let got = fake.wait_accepted(n, Duration::from_secs(5)).await;
            got[n - 1].body.clone()
        }
    };
    let state_of = |timer: &Value| {
        let (app, token, id) = (
            &app,
            token.clone(),
            timer["id"].as_str().expect("id").to_string(),
        );
        async move {
            let (_, t) = app
                .call(
                    Method::GET,
                    &format!("/api/v1/checkins/{id}"),
                    Some(&token),
                    None,
                )
                .await;
            t["state"].as_str().unwrap_or_default().to_string()
        }
    };
    let before = fake.accepted().len();
    let (s, _) = crate::voice::voice(
        &app,
        "/hooks/twilio/inbound",
        &sms("sali 1111", "SMout1"),
        &auth,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        answer(before + 1)
            .await
            .contains("NO se confirmo tu salida: el PIN no es correcto")
    );
    assert_eq!(
        state_of(&first).await,
        "scheduled",
        "a wrong PIN checks out nothing"
    );

    let (s, _) = crate::voice::voice(
        &app,
        "/hooks/twilio/inbound",
        &sms("SALÍ 4821", "SMout2"),
        &auth,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Delivered twice by the provider: answered once.
    crate::voice::voice(
        &app,
        "/hooks/twilio/inbound",
        &sms("SALÍ 4821", "SMout2"),
        &auth,
    )
    .await;
    let done = answer(before + 2).await;
    assert!(
        done.contains("confirmaste que saliste de tu cita (Oficina de ICE"),
        "{done}"
    );
    assert_eq!(
        state_of(&first).await,
        "checked_out",
        "the first deadline first"
    );
    assert_eq!(state_of(&second).await, "scheduled");

    // The duress PIN: the same answer, and the alert goes out in silence.
    let (s, _) = crate::voice::voice(
        &app,
        "/hooks/twilio/inbound",
        &sms("sali 9999", "SMout3"),
        &auth,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let forced = fake.wait_accepted(before + 4, Duration::from_secs(5)).await;
    let new = &forced[before + 2..];
    assert!(
        new.iter()
            .any(|m| m.to == "+12135557000" && m.body.contains("Cita no confirmada")),
        "{new:?}"
    );
    let reply = new
        .iter()
        .find(|m| m.to == "+12135550100")
        .expect("the answer");
    assert!(
        reply.body.contains("confirmaste que saliste de tu cita"),
        "{}",
        reply.body
    );
    assert_eq!(state_of(&second).await, "checked_out");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.accepted().len(),
        before + 4,
        "one answer per text, nothing to the person's phone beyond it"
    );

    // Nothing left to confirm.
    crate::voice::voice(
        &app,
        "/hooks/twilio/inbound",
        &sms("out 4821", "SMout4"),
        &auth,
    )
    .await;
    assert!(
        answer(before + 5)
            .await
            .contains("no tienes ninguna cita pendiente")
    );
}

on_both_backends!(
    a_missed_deadline_raises_one_alert_and_a_check_out_none,
    a_timer_survives_a_restart_and_fires_once_across_servers,
    a_duress_check_out_answers_like_one_and_raises_the_alert,
    a_check_out_by_sms_needs_the_pin,
);

/// The person is reminded by SMS before the deadline, once.
#[tokio::test]
async fn a_reminder_goes_before_the_deadline_once() {
    let app = sqlite_app().await;
    let token = app.person("+12135550100").await;
    schedule(&app, &token, 10 * 60_000).await;
    wait_until("the reminder", || {
        app.sms_lines().iter().any(|l| {
            l["to"] == "+12135550100"
                && l["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("si no confirmas"))
        })
    })
    .await;
    app.settled("checkins").await;
    let reminders = app
        .sms_lines()
        .iter()
        .filter(|l| {
            l["body"]
                .as_str()
                .is_some_and(|b| b.contains("si no confirmas"))
        })
        .count();
    assert_eq!(reminders, 1);
}

/// The consulate sees a missed check-in as such, with the person's plan.
#[tokio::test]
async fn the_console_shows_the_plan_of_a_missed_check_in() {
    let app = crate::console::staffed_app("sqlite", |_| {})
        .await
        .expect("app");
    let token = person_with_contact(&app, "+12135550100", "+12135557000").await;
    schedule(&app, &token, 1_000).await;
    wait_until("the missed check-in's SMS", || {
        missed_to(&app.sms_lines(), "+12135557000") >= 1
    })
    .await;
    let (_, list) = app
        .call(Method::GET, "/api/v1/checkins", Some(&token), None)
        .await;
    let alert_id = list["checkins"][0]["alert_id"]
        .as_str()
        .expect("fired")
        .to_string();
    let staff = crate::console::login(&app, "la.operator").await;
    let (status, detail) = staff.case(&alert_id).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        detail["checkin"]["place"],
        "Oficina de ICE, 300 N Los Angeles St"
    );
    assert_eq!(
        detail["checkin"]["note"],
        "Cita de revisión; mi número A está en la carpeta azul."
    );
    assert_eq!(detail["checkin"]["forced"], false);
}
