//! The console API: login, sessions, CSRF, scope (another
//! consulate's alert is a 404 on every endpoint), case handling, the audit
//! log, escalation and statistics — on both backends.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use avisa_server::Config;

use crate::support::*;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Adds a staff account directly in the store the server uses.
pub(crate) async fn add_staff(config: &Config, username: &str, consulate: &str, role: &str) {
    let store = avisa_server::open_store(config).await.expect("store");
    let hash = store.vault().hash_secret(PASSWORD).expect("hash");
    store
        .add_staff(
            username,
            &hash,
            consulate,
            role.parse().expect("a role"),
            avisa_core::now_millis(),
        )
        .await
        .expect("add staff");
    store.close().await;
}

/// A logged-in console client: the cookie and the CSRF token, by hand.
pub(crate) struct Console<'a> {
    app: &'a TestApp,
    pub(crate) cookie: String,
    csrf: String,
}

async fn login_raw(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/console/login", app.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login")
}

pub(crate) async fn login<'a>(app: &'a TestApp, username: &str) -> Console<'a> {
    let resp = login_raw(app, username, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    let cookie = set.split(';').next().expect("pair").to_string();
    let body: Value = resp.json().await.expect("json");
    Console {
        app,
        cookie,
        csrf: body["csrf_token"].as_str().expect("csrf").to_string(),
    }
}

impl Console<'_> {
    // One typed helper per endpoint the tests call most (see the phone's in
    // `support.rs`).

    /// `GET /api/v1/console/alerts`: the queue.
    pub(crate) async fn queue(&self) -> (StatusCode, Value) {
        self.call(Method::GET, "/api/v1/console/alerts", None).await
    }

    /// `GET /api/v1/console/alerts/{id}`: a case.
    pub(crate) async fn case(&self, id: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/console/alerts/{id}");
        self.call(Method::GET, &path, None).await
    }

    /// `POST /api/v1/console/alerts/{id}/acknowledge`.
    pub(crate) async fn acknowledge(&self, id: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/console/alerts/{id}/acknowledge");
        self.call(Method::POST, &path, None).await
    }

    /// `POST /api/v1/console/alerts/{id}/resolve`.
    pub(crate) async fn resolve(&self, id: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/console/alerts/{id}/resolve");
        self.call(Method::POST, &path, Some(body)).await
    }

    /// `GET /api/v1/console/me`.
    pub(crate) async fn me(&self) -> (StatusCode, Value) {
        self.call(Method::GET, "/api/v1/console/me", None).await
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_csrf(method, path, body, Some(&self.csrf.clone()))
            .await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn call_csrf(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base))
            .header("cookie", &self.cookie);
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("text");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A person pressing in Los Angeles (or elsewhere); returns the alert id.
async fn alert_at(app: &TestApp, phone: &str, lat: f64, lon: f64) -> String {
    let token = app.person(phone).await;
    let (s, a) = app
        .call(Method::POST, "/api/v1/alerts", Some(&token), Some(json!({"idempotency_key": format!("console-{}", phone.trim_start_matches('+')), "location": {"lat": lat, "lon": lon, "accuracy_m": 20}})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    a["alert_id"].as_str().expect("id").to_string()
}

pub(crate) async fn staffed_app(backend: &str, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = config_on(&dir, backend).await?;
    tweak(&mut config);
    let app = TestApp::start(config, dir).await;
    add_staff(&app.config, "la.operator", "los-angeles", "operator").await;
    add_staff(&app.config, "la.super", "los-angeles", "supervisor").await;
    add_staff(&app.config, "chi.super", "chicago", "supervisor").await;
    add_staff(&app.config, "ciam.duty", "ciam", "operator").await;
    Some(app)
}

async fn login_and_sessions(backend: &str) {
    let Some(app) = staffed_app(backend, |_| {}).await else {
        return;
    };
    // Wrong password and unknown user: the same 401.
    let wrong = login_raw(&app, "la.operator", "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.expect("json");
    let unknown: Value = login_raw(&app, "nobody", PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(wrong, unknown, "no hint whether the username exists");
    assert_eq!(wrong["error"]["code"], "login_failed");

    let resp = login_raw(&app, "la.operator", PASSWORD).await;
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http here");
    let console = login(&app, "la.operator").await;
    let (status, me) = console.me().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["time_zone"], "America/Los_Angeles",
        "the console's times are the consulate's"
    );
    let (_, ciam) = login(&app, "ciam.duty").await.me().await;
    assert_eq!(ciam["time_zone"], "America/Phoenix", "CIAM is in Tucson");
    assert_eq!(
        (
            me["username"].as_str(),
            me["role"].as_str(),
            me["consulate"]["id"].as_str()
        ),
        (Some("la.operator"), Some("operator"), Some("los-angeles"))
    );
    let (status, _) = app
        .call(Method::GET, "/api/v1/console/me", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no cookie, no session");
    // Logout needs the CSRF token too, then the session is gone.
    let (status, _) = console
        .call_csrf(Method::POST, "/api/v1/console/logout", None, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = console
        .call(Method::POST, "/api/v1/console/logout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = console.me().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Failed logins are throttled per address: see login.rs.

    // Disabling an account ends its sessions.
    let ciam = login(&app, "ciam.duty").await;
    let store = avisa_server::open_store(&app.config).await.expect("store");
    let staff = store
        .staff_by_username("ciam.duty")
        .await
        .expect("get")
        .expect("exists");
    store
        .set_staff_disabled(staff.id, true, avisa_core::now_millis())
        .await
        .expect("disable");
    store.close().await;
    let (status, _) = ciam.me().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_raw(&app, "ciam.duty", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn scope_is_the_consulate_and_others_are_404(backend: &str) {
    let Some(app) = staffed_app(backend, |_| {}).await else {
        return;
    };
    let la = alert_at(&app, "+12135550100", 34.0505, -118.2551).await;
    let chi = alert_at(&app, "+13125550100", 41.8781, -87.6298).await;
    let la_op = login(&app, "la.operator").await;
    let chi_sup = login(&app, "chi.super").await;
    let ciam = login(&app, "ciam.duty").await;

    let ids = |v: &Value| {
        v.as_array()
            .expect("list")
            .iter()
            .map(|a| a["alert_id"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let (_, q) = la_op.queue().await;
    assert_eq!(ids(&q), std::slice::from_ref(&la));
    assert_eq!(q[0]["person_name"], "María Pérez");
    assert_eq!(q[0]["place"], "US-CA");
    assert!(q[0]["distance_km"].as_f64().is_some_and(|d| d < 2.0));
    let (_, q) = chi_sup.queue().await;
    assert_eq!(ids(&q), std::slice::from_ref(&chi));
    let (_, q) = ciam.queue().await;
    let mut all = ids(&q);
    all.sort();
    let mut want = vec![la.clone(), chi.clone()];
    want.sort();
    assert_eq!(all, want, "CIAM sees every consulate");

    // Every alert endpoint answers another consulate's alert like a missing one.
    let missing = uuid::Uuid::now_v7().to_string();
    for id in [&la, &missing] {
        let (s, b) = chi_sup.case(id).await;
        assert_eq!((s, error_code(&b)), (StatusCode::NOT_FOUND, "not_found"));
        for (action, body) in [
            ("acknowledge", None),
            ("assign", Some(json!({"username": "chi.super"}))),
            ("notes", Some(json!({"text": "x"}))),
            ("resolve", Some(json!({"outcome": "false_alarm"}))),
            ("reopen", None),
        ] {
            let (s, b) = chi_sup
                .call(
                    Method::POST,
                    &format!("/api/v1/console/alerts/{id}/{action}"),
                    body,
                )
                .await;
            assert_eq!(
                (s, error_code(&b)),
                (StatusCode::NOT_FOUND, "not_found"),
                "{action} on {id}"
            );
        }
        let (s, _) = chi_sup
            .call(
                Method::GET,
                &format!("/api/v1/console/audit?alert_id={id}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, _) = chi_sup
        .call(Method::GET, "/api/v1/console/alerts/not-a-uuid", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing changed on the LA alert.
    let (_, d) = la_op.case(&la).await;
    assert_eq!(d["case"]["state"], "new");
    assert!(
        d["timeline"].as_array().is_some_and(|t| t.len() == 1),
        "{d}"
    );

    // Chicago's tries on LA's alert are in the audit, for LA's supervisor
    // to see (entries on LA's cases, whoever made them).
    let la_sup = login(&app, "la.super").await;
    let (_, log) = la_sup
        .call(Method::GET, "/api/v1/console/audit?limit=100", None)
        .await;
    let denied: Vec<&Value> = log
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["action"] == "denied")
        .collect();
    assert_eq!(
        denied.len(),
        7,
        "one read, five writes, one audit read: {log}"
    );
    assert!(
        denied
            .iter()
            .all(|e| e["staff"] == "chi.super" && e["alert_id"] == la.as_str())
    );
    assert!(
        denied[0]["case_number"]
            .as_str()
            .is_some_and(|n| n.starts_with("LAX-20"))
    );
    // Chicago's supervisor sees their own staff's refused tries, on LA's
    // alert and on the missing one alike: never the alert's id or case
    // number (they would tell a real alert of another consulate from a
    // missing one).
    let (_, chi_log) = chi_sup
        .call(Method::GET, "/api/v1/console/audit?limit=100", None)
        .await;
    let chi_denied: Vec<&Value> = chi_log
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["action"] == "denied")
        .collect();
    assert_eq!(chi_denied.len(), 14, "seven tries on each id: {chi_log}");
    assert!(
        chi_denied
            .iter()
            .all(|e| e["alert_id"].is_null() && e["case_number"].is_null()),
        "{chi_log}"
    );
    let text = chi_log.to_string();
    assert!(
        !text.contains(la.as_str()) && !text.contains("LAX-"),
        "{text}"
    );

    // Case numbers: each office counts its own.
    assert!(
        d["case_number"]
            .as_str()
            .is_some_and(|n| n.starts_with("LAX-20") && n.ends_with("-0001")),
        "{d}"
    );
    let (_, c) = ciam.case(&chi).await;
    assert!(
        c["case_number"]
            .as_str()
            .is_some_and(|n| n.starts_with("CHI-20") && n.ends_with("-0001")),
        "{c}"
    );
    // A place name from the built-in gazetteer; each message's number.
    assert_eq!(d["place"]["name"], "Los Angeles", "{d}");
    assert_eq!(d["place"]["admin"], "California");
    let near = d["facilities_near"].as_array().expect("facilities");
    assert_eq!(near.len(), 3, "{d}");
    assert!(near.iter().all(|f| f["state"] == "CA"), "{d}");
    let numbers: Vec<&str> = d["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["to"].as_str())
        .collect();
    assert!(numbers.contains(&"+12135550100"), "{d}");

    // Colleagues: an office lists its own staff only; CIAM lists all.
    let names = |v: &Value| {
        let mut n: Vec<String> = v
            .as_array()
            .expect("staff")
            .iter()
            .map(|s| s["username"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    let (_, staff) = la_op.call(Method::GET, "/api/v1/console/staff", None).await;
    assert_eq!(names(&staff), ["la.operator", "la.super"]);
    let (_, staff) = ciam.call(Method::GET, "/api/v1/console/staff", None).await;
    assert_eq!(names(&staff).len(), 4);
    // A search through past cases is audited; the live queue is not.
    let (s, _) = la_op
        .call(Method::GET, "/api/v1/console/alerts?state=resolved", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, log) = la_sup
        .call(Method::GET, "/api/v1/console/audit?limit=100", None)
        .await;
    let searches: Vec<&Value> = log
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["action"] == "search")
        .collect();
    assert_eq!(searches.len(), 1, "{log}");
    assert_eq!(searches[0]["detail"], "state=resolved");

    // Practice alerts never reach the console, not even CIAM's.
    let token = app.person("+12135550155").await;
    let (_, p) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(json!({"idempotency_key": "practice-console", "practice": true})),
        )
        .await;
    let pid = p["alert_id"].as_str().expect("id");
    let (s, _) = ciam.case(pid).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn case_handling_with_csrf_and_audit(backend: &str) {
    let Some(app) = staffed_app(backend, |_| {}).await else {
        return;
    };
    let id = alert_at(&app, "+12135550100", 34.0505, -118.2551).await;
    let op = login(&app, "la.operator").await;
    let base = format!("/api/v1/console/alerts/{id}");

    // CSRF: missing or wrong token changes nothing.
    let (s, b) = op
        .call_csrf(Method::POST, &format!("{base}/acknowledge"), None, None)
        .await;
    assert_eq!((s, error_code(&b)), (StatusCode::FORBIDDEN, "csrf"));
    let (s, _) = op
        .call_csrf(
            Method::POST,
            &format!("{base}/acknowledge"),
            None,
            Some("forged"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, d) = op.call(Method::GET, &base, None).await;
    assert_eq!(d["case"]["state"], "new");
    assert_eq!(d["person"]["phone"], "+12135550100");
    assert_eq!(d["location"]["lat"], 34.0505);
    assert_eq!(d["consulate"]["id"], "los-angeles");

    let (s, d) = op
        .call(Method::POST, &format!("{base}/acknowledge"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(
        (
            d["case"]["state"].as_str(),
            d["case"]["assigned_to"].as_str()
        ),
        (Some("acknowledged"), Some("la.operator"))
    );
    let (s, b) = op
        .call(Method::POST, &format!("{base}/acknowledge"), None)
        .await;
    assert_eq!((s, error_code(&b)), (StatusCode::CONFLICT, "case_state"));
    let (s, d) = op
        .call(
            Method::POST,
            &format!("{base}/assign"),
            Some(json!({"username": "la.super"})),
        )
        .await;
    assert_eq!(
        (s, d["case"]["assigned_to"].as_str()),
        (StatusCode::OK, Some("la.super"))
    );
    let (s, b) = op
        .call(
            Method::POST,
            &format!("{base}/assign"),
            Some(json!({"username": "chi.super"})),
        )
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "staff_invalid"),
        "a colleague who cannot see the case"
    );
    let (s, _) = op
        .call(
            Method::POST,
            &format!("{base}/notes"),
            Some(json!({"text": "Hablé con su hermana: está en Adelanto."})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // The call log: with whom and how it went, on the timeline.
    let (s, d) = op
        .call(
            Method::POST,
            &format!("{base}/calls"),
            Some(json!({"with": "person", "result": "no_answer", "note": "Dos intentos"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let calls: Vec<&Value> = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == "call")
        .collect();
    assert_eq!(calls.len(), 1, "{d}");
    assert_eq!(calls[0]["detail"], "person no_answer\nDos intentos");
    assert_eq!(calls[0]["staff"], "la.operator");
    for bad in [
        json!({"with": "neighbour", "result": "spoke"}),
        json!({"with": "person", "result": "maybe"}),
        json!({"with": "person", "result": "spoke", "note": "x".repeat(1001)}),
    ] {
        let (s, _) = op
            .call(Method::POST, &format!("{base}/calls"), Some(bad))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (s, b) = op
        .call(
            Method::POST,
            &format!("{base}/notes"),
            Some(json!({"text": "  "})),
        )
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "note_invalid")
    );
    let (s, b) = op
        .call(
            Method::POST,
            &format!("{base}/resolve"),
            Some(json!({"outcome": "detained"})),
        )
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "facility_required")
    );
    let (s, b) = op
        .call(
            Method::POST,
            &format!("{base}/resolve"),
            Some(json!({"outcome": "vanished"})),
        )
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "outcome_invalid")
    );
    let (_, facilities) = op
        .call(Method::GET, "/api/v1/console/facilities?q=adelanto", None)
        .await;
    let facility = facilities[0]["name"]
        .as_str()
        .expect("a facility")
        .to_string();
    let (s, d) = op
        .call(
            Method::POST,
            &format!("{base}/resolve"),
            Some(json!({"outcome": "detained", "detail": facility})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(
        (
            d["case"]["state"].as_str(),
            d["case"]["outcome"].as_str(),
            d["case"]["outcome_detail"].as_str()
        ),
        (Some("resolved"), Some("detained"), Some(facility.as_str()))
    );
    let (s, d) = op.call(Method::POST, &format!("{base}/reopen"), None).await;
    assert_eq!(
        (s, d["case"]["state"].as_str()),
        (StatusCode::OK, Some("acknowledged"))
    );
    let kinds: Vec<&str> = d["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "acknowledged",
            "assigned",
            "note",
            "call",
            "resolved",
            "reopened"
        ]
    );
    assert!(
        d["timeline"][3]["detail"]
            .as_str()
            .is_some_and(|n| n.contains("Adelanto"))
    );

    // The note, the facility and the outcome are sealed at rest (and the
    // audit says who resolved it, not how).
    let text = raw_database(&app);
    assert!(
        !text.contains("hermana") && !text.contains(&facility) && !text.contains("Dos intentos"),
        "case details in plain text"
    );
    assert!(!text.contains("detained"), "the outcome in plain text");

    // The audit log: supervisors read it, operators do not.
    let (s, b) = op.call(Method::GET, "/api/v1/console/audit", None).await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::FORBIDDEN, "forbidden_role")
    );
    let sup = login(&app, "la.super").await;
    let (s, audit) = sup
        .call(
            Method::GET,
            &format!("/api/v1/console/audit?alert_id={id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut actions: Vec<String> = audit
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["staff"].as_str().unwrap_or(""),
                a["action"].as_str().unwrap_or("")
            )
        })
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "la.operator:view",
            "la.operator:acknowledge",
            "la.operator:assign",
            "la.operator:note",
            "la.operator:call",
            "la.operator:resolve",
            "la.operator:reopen",
            "la.super:read_audit",
        ]
    );
    // The database itself refuses to edit or delete the audit log.
    append_only(&app).await;
}

/// Tries to change audit_log behind the server's back.
async fn append_only(app: &TestApp) {
    use secrecy::ExposeSecret;
    use sqlx::Connection;
    let url = app.config.database_url.expose_secret().to_string();
    if url.is_empty() {
        let path = app.config.data_dir.join("avisa.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .expect("connect");
        assert!(
            sqlx::query("UPDATE audit_log SET action = 'nothing'")
                .execute(&mut conn)
                .await
                .is_err()
        );
        assert!(
            sqlx::query("DELETE FROM audit_log")
                .execute(&mut conn)
                .await
                .is_err()
        );
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        assert!(
            sqlx::query("UPDATE audit_log SET action = 'nothing'")
                .execute(&mut conn)
                .await
                .is_err()
        );
        assert!(
            sqlx::query("DELETE FROM audit_log")
                .execute(&mut conn)
                .await
                .is_err()
        );
        assert!(
            sqlx::query("TRUNCATE audit_log")
                .execute(&mut conn)
                .await
                .is_err()
        );
    }
}

async fn unacknowledged_alerts_escalate_to_ciam(backend: &str) {
    let Some(app) = staffed_app(backend, |c| {
        c.console.escalate_after = Duration::from_secs(1);
        c.console.escalate_again_after = Duration::from_secs(2);
        c.alerts
            .duty_phones
            .insert("los-angeles".into(), "+12135550199".into());
        c.alerts
            .duty_phones
            .insert("ciam".into(), "+15205550100".into());
    })
    .await
    else {
        return;
    };
    let id = alert_at(&app, "+12135550100", 34.0505, -118.2551).await;
    let ciam = login(&app, "ciam.duty").await;
    let la = login(&app, "la.operator").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, q) = ciam.queue().await;
        if q.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["alert_id"] == json!(id) && x["escalated"] == true)
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "not escalated: {q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, d) = la.case(&id).await;
    assert!(
        d["case"]["escalated_at"].as_i64().is_some(),
        "the owning consulate still sees it, marked"
    );
    assert!(
        d["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["kind"] == "escalated"))
    );
    // The duty phones are told: the consulate's and CIAM's, once at each
    // threshold, with the person's first name and the console link.
    let escalations = |phone: &str| {
        app.sms_lines()
            .into_iter()
            .filter(|l| l["to"] == phone)
            .filter_map(|l| l["body"].as_str().map(str::to_string))
            .filter(|b| b.contains("SIN ATENDER"))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while escalations("+15205550100").len() < 2 || escalations("+12135550199").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "escalation SMS: {:?}",
            app.sms_lines()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A third would come from a later round of the job.
    app.settled("escalation").await;
    for phone in ["+15205550100", "+12135550199"] {
        let sent = escalations(phone);
        assert_eq!(sent.len(), 2, "once at each threshold: {sent:?}");
        let number = d["case_number"].as_str().expect("a case number");
        assert!(
            sent[0].starts_with(&format!("AVISA {number} Maria P.: SIN ATENDER"))
                && sent[0].contains(&format!("/console/alerts/{id}")),
            "{}",
            sent[0]
        );
        assert!(sent[1].contains("SIGUE SIN ATENDER"), "{}", sent[1]);
    }
    // Each escalation is in the audit once, as Avisa's own act, for the
    // consulate's supervisors to see.
    add_staff(&app.config, "la.boss", "los-angeles", "supervisor").await;
    let boss = login(&app, "la.boss").await;
    let (_, log) = boss
        .call(
            Method::GET,
            &format!("/api/v1/console/audit?alert_id={id}"),
            None,
        )
        .await;
    let escalations: Vec<&Value> = log
        .as_array()
        .expect("log")
        .iter()
        .filter(|e| e["action"] == "escalate")
        .collect();
    assert_eq!(escalations.len(), 2, "{log}");
    assert!(
        escalations
            .iter()
            .all(|e| e["staff"] == "avisa" && e["consulate_id"] == "los-angeles")
    );
    assert_eq!(escalations[0]["detail"], "again, 2 SMS");
    let (_, d) = la.case(&id).await;
    assert!(
        d["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["kind"] == "escalated_again"))
    );
    assert!(
        d["recipients"].as_array().is_some_and(|r| r.len() == 2),
        "the person's list of recipients does not grow with escalations: {d}"
    );
    // An acknowledged alert is not escalated.
    let other = alert_at(&app, "+12135550111", 34.0505, -118.2551).await;
    let (s, _) = la.acknowledge(&other).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, d) = la.case(&other).await;
    assert_eq!(d["case"]["escalated_at"], Value::Null);
}

async fn statistics_for_supervisors(backend: &str) {
    let Some(app) = staffed_app(backend, |_| {}).await else {
        return;
    };
    let a = alert_at(&app, "+12135550100", 34.0505, -118.2551).await;
    alert_at(&app, "+12135550111", 34.0505, -118.2551).await;
    alert_at(&app, "+13125550100", 41.8781, -87.6298).await;
    let op = login(&app, "la.operator").await;
    op.acknowledge(&a).await;
    op.resolve(&a, json!({"outcome": "false_alarm"})).await;
    let (s, _) = op.call(Method::GET, "/api/v1/console/stats", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let sup = login(&app, "la.super").await;
    let (s, stats) = sup.call(Method::GET, "/api/v1/console/stats", None).await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    assert_eq!(
        (stats["alerts"].as_u64(), stats["acknowledged"].as_u64()),
        (Some(2), Some(1)),
        "LA's two, not Chicago's"
    );
    assert_eq!(stats["outcomes"]["false_alarm"], 1);
    assert!(stats["ack_median_seconds"].as_i64().is_some());
    assert_eq!(
        stats["days"].as_array().map(Vec::len),
        Some(30),
        "the last 30 days, today included"
    );
    assert!(stats["per_consulate"].as_array().is_some_and(Vec::is_empty));
    let csv = app
        .client
        .get(format!("{}/api/v1/console/stats.csv", app.base))
        .header("cookie", &sup.cookie)
        .send()
        .await
        .expect("csv");
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/csv"))
    );
    let csv = csv.text().await.expect("text");
    assert!(
        csv.starts_with("date,alerts\n") && csv.contains("\nalerts,2\n"),
        "{csv}"
    );
    // Each case by its number, no personal data.
    let cases: Vec<&str> = csv
        .lines()
        .skip_while(|l| !l.starts_with("case,"))
        .skip(1)
        .collect();
    assert_eq!(cases.len(), 2, "{csv}");
    assert!(cases.iter().all(|l| l.starts_with("LAX-20")), "{csv}");
    assert!(!csv.contains("Pérez"), "no names in the statistics");
    let svg = app
        .client
        .get(format!("{}/api/v1/console/stats.svg", app.base))
        .header("cookie", &sup.cookie)
        .send()
        .await
        .expect("svg")
        .text()
        .await
        .expect("text");
    assert!(svg.starts_with("<svg") && svg.matches("<rect").count() == 30);
    add_staff(&app.config, "ciam.super", "ciam", "supervisor").await;
    let cs = login(&app, "ciam.super").await;
    let (_, all) = cs.call(Method::GET, "/api/v1/console/stats", None).await;
    assert_eq!(all["alerts"], 3);
    assert_eq!(all["per_consulate"].as_array().map(Vec::len), Some(2));
    let (s, b) = sup
        .call(Method::GET, "/api/v1/console/stats?from=2026-13-01", None)
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "date_invalid")
    );
}

#[tokio::test]
async fn the_console_page_is_served() {
    let app = sqlite_app().await;
    for path in avisa_server::web::console_paths() {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    // A deep link (from a duty SMS) opens the console page.
    let page = app
        .client
        .get(format!(
            "{}/console/alerts/{}",
            app.base,
            uuid::Uuid::now_v7()
        ))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(page.contains("console.js"));
    let (status, _) = app
        .call(Method::GET, "/console/missing.js", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The live stream tells a consulate of its own real alerts only: not of
/// another consulate's, not of practice.
async fn the_live_stream_shows_only_the_consulates_real_alerts(backend: &str) {
    let Some(app) = staffed_app(backend, |_| {}).await else {
        return;
    };
    let la = login(&app, "la.operator").await;
    let mut stream = app
        .client
        .get(format!("{}/api/v1/console/events", app.base))
        .header("cookie", &la.cookie)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);

    let chicago = alert_at(&app, "+13125550101", 41.8781, -87.6298).await;
    let token = app.person("+12135550102").await;
    let (status, practice) = app
        .call(
            Method::POST,
            "/api/v1/alerts",
            Some(&token),
            Some(
                json!({"idempotency_key": "practice-in-la", "practice": true,
                        "location": {"lat": 34.05, "lon": -118.25, "accuracy_m": 20}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{practice}");
    let practice = practice["alert_id"].as_str().expect("id").to_string();
    let los_angeles = alert_at(&app, "+12135550103", 34.0505, -118.2551).await;

    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&los_angeles) {
        assert!(
            Instant::now() < deadline,
            "no event for the LA alert: {seen}"
        );
        match tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(_) => panic!("the stream ended: {seen}"),
            Err(_) => {}
        }
    }
    assert!(seen.contains("event: changed"), "{seen}");
    assert!(
        !seen.contains(&chicago),
        "another consulate's alert: {seen}"
    );
    assert!(!seen.contains(&practice), "a practice alert: {seen}");

    // Logging out ends the open stream within a second: alerts are not
    // shown to a session that no longer stands.
    let (s, _) = la.call(Method::POST, "/api/v1/console/logout", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let out = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), stream.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(_) => break,
            Err(_) => panic!("the stream outlived the logout"),
        }
    }
    assert!(
        out.elapsed() <= Duration::from_millis(1500),
        "{:?}",
        out.elapsed()
    );
}

/// The idle timeout counts what the officer does, not the page's polling:
/// a tab left open ends its session; one in use keeps it.
async fn idle_counts_the_officers_activity(backend: &str) {
    let Some(app) = staffed_app(backend, |c| {
        c.console.session_idle = Duration::from_secs(2);
    })
    .await
    else {
        return;
    };
    let polling = login(&app, "la.operator").await;
    let working = login(&app, "la.super").await;
    let (_, me) = polling.me().await;
    assert_eq!(me["idle_seconds"], 2);
    assert_eq!(me["alarm_every_seconds"], 10);
    assert!(
        me["checklist"]["new"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        let (s, _) = polling.queue().await;
        let (w, _) = working
            .call_with(
                Method::GET,
                "/api/v1/console/alerts",
                &[("x-avisa-activity", "1")],
            )
            .await;
        assert_eq!(w, StatusCode::OK, "activity keeps the session");
        if s == StatusCode::UNAUTHORIZED {
            assert!(started.elapsed() >= Duration::from_millis(1500));
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("polling alone kept an idle session alive");
}

/// Two instances on one PostgreSQL: a console stream on one hears a press
/// taken by the other at once (LISTEN/NOTIFY), not at its next poll.
async fn a_press_on_another_instance_reaches_this_console_at_once(backend: &str) {
    if backend != "postgres" {
        return; // SQLite is one process.
    }
    let Some(a) = staffed_app(backend, |_| {}).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut config = a.config.clone();
    config.data_dir = dir.path().join("data");
    config.data_key = std::fs::read_to_string(a.config.data_key_file())
        .expect("the first instance's key")
        .trim()
        .to_string()
        .into();
    let b = TestApp::start(config, dir).await;
    let la = login(&a, "la.operator").await;
    let mut stream = a
        .client
        .get(format!("{}/api/v1/console/events", a.base))
        .header("cookie", &la.cookie)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    // Both instances listening.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..3 {
        let id = alert_at(&b, &format!("+1213555012{n}"), 34.0505, -118.2551).await;
        let pressed = Instant::now();
        let mut seen = String::new();
        while !seen.contains(&id) {
            let left = Duration::from_secs(1).saturating_sub(pressed.elapsed());
            assert!(
                !left.is_zero(),
                "press {n} on B not on A's console within 1 s: {seen}"
            );
            match tokio::time::timeout(left, stream.chunk()).await {
                Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => panic!("the stream ended: {seen}"),
                Err(_) => {}
            }
        }
    }
}

on_both_backends!(
    a_press_on_another_instance_reaches_this_console_at_once,
    idle_counts_the_officers_activity,
    the_live_stream_shows_only_the_consulates_real_alerts,
    login_and_sessions,
    scope_is_the_consulate_and_others_are_404,
    case_handling_with_csrf_and_audit,
    unacknowledged_alerts_escalate_to_ciam,
    statistics_for_supervisors,
);
