//! `avisa demo`: the whole system once, on the embedded defaults.
//!
//! A fresh temporary data directory, the `log` gateway, a real server on a
//! loopback port: a person registers (the code is read from the SMS log, as
//! a person trying Avisa would read it on the terminal), fills in a profile
//! and three contacts, presses, and the demo prints what each recipient
//! received and how each message ended.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use avisa_server::{App, Config};

struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    /// The unlock the server gave when the PIN was set (as the app keeps it).
    unlock: Option<String>,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(u) = &self.unlock {
            req = req.header("x-avisa-unlock", u);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path} answered {status}: {value}");
        }
        Ok(value)
    }
}

fn sms_log(config: &Config) -> Vec<Value> {
    std::fs::read_to_string(config.sms_log_file())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub async fn run() -> anyhow::Result<()> {
    avisa_sms::http::init_tls();
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = Config {
        data_dir: dir.path().join("avisa-data"),
        // Its own key, gone with the directory: never the user's.
        data_key_file: dir.path().join("data.key"),
        public_url: base.clone(),
        ..Config::default()
    };
    config.sms.log_echo = false;
    let app = App::build(config.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(avisa_server::serve(listener, app, async {
        let _ = stopped.await;
    }));
    println!(
        "Avisa demo: a server on {base}, data in a temporary directory, SMS written to the log gateway.\n"
    );

    let mut api = Api {
        client: reqwest::Client::new(),
        base,
        token: None,
        unlock: None,
    };
    let phone = "+12135550100";
    let device = api
        .call(
            reqwest::Method::POST,
            "/api/v1/devices",
            Some(json!({"phone": "(213) 555-0100"})),
        )
        .await?;
    api.token = device["token"].as_str().map(str::to_string);
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(line) = sms_log(&config).into_iter().find(|l| l["to"] == phone) {
            let body = line["body"].as_str().unwrap_or_default().to_string();
            break body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_string)
                .context("no code in the SMS")?;
        }
        if Instant::now() > deadline {
            bail!("the verification code never reached the SMS log");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("1. María registers {phone}; the code {code} arrives by SMS and verifies her phone.");
    api.call(
        reqwest::Method::POST,
        "/api/v1/devices/verify",
        Some(json!({"code": code})),
    )
    .await?;
    let profile = api.call(
        reqwest::Method::PUT,
        "/api/v1/profile",
        Some(json!({"name": "María Pérez", "home_state": "CA", "home_county": "Los Angeles", "language": "es", "cancel_pin": "4821", "keyword": "AUXILIO"})),
    )
    .await?;
    api.unlock = profile["unlock"].as_str().map(str::to_string);
    let contacts = [
        (
            "Mamá",
            "55 1234 5678",
            "MX",
            "es",
            "Mamá, me detuvo inmigración. Llama a la licenciada Torres y al consulado. Te quiero.",
        ),
        (
            "Lic. Torres (abogada)",
            "(213) 555-0142",
            "US",
            "es",
            "Licenciada: soy María Pérez, me están deteniendo. Mi número de caso está en mi carpeta.",
        ),
        (
            "Jefe (Tom)",
            "(323) 555-0199",
            "US",
            "en",
            "Tom, I have been detained by immigration. I will not make it to work. Please call my lawyer.",
        ),
    ];
    // Each number in its country, as the app sends it: "55 1234 5678" in
    // Mexico is Mexico City, not New Jersey.
    for (name, number, country, language, message) in contacts {
        api.call(
            reqwest::Method::POST,
            "/api/v1/contacts",
            Some(json!({"name": name, "phone": number, "country": country, "language": language, "message": message})),
        )
        .await?;
    }
    println!(
        "2. She writes her profile (PIN 4821) and three contacts, each with their own message."
    );
    let alert = api
        .call(
            reqwest::Method::POST,
            "/api/v1/alerts",
            Some(json!({"idempotency_key": "demo-press-0001", "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 15}})),
        )
        .await?;
    let id = alert["alert_id"]
        .as_str()
        .context("no alert id")?
        .to_string();
    println!(
        "3. She presses the button in downtown Los Angeles. The alert is stored and routed to: {}.\n",
        alert["consulate"]["name"]
            .as_str()
            .unwrap_or("(no consulate)")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let final_alert = loop {
        let now = api
            .call(reqwest::Method::GET, &format!("/api/v1/alerts/{id}"), None)
            .await?;
        let done = now["recipients"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x["status"] != "queued"));
        if done {
            break now;
        }
        if Instant::now() > deadline {
            bail!("messages still queued after 10 s: {now}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = sms_log(&config);
    println!("4. What each recipient received:\n");
    for r in final_alert["recipients"].as_array().into_iter().flatten() {
        let rid = r["id"].as_str().unwrap_or_default();
        let line = log.iter().find(|l| l["id"] == rid);
        println!(
            "   ── {} ({}) to {}",
            r["name"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
            line.and_then(|l| l["to"].as_str()).unwrap_or("?")
        );
        for text_line in line
            .and_then(|l| l["body"].as_str())
            .unwrap_or("(not sent)")
            .lines()
        {
            println!("      {text_line}");
        }
        println!();
    }
    println!("5. Final status of each message:");
    for r in final_alert["recipients"].as_array().into_iter().flatten() {
        println!(
            "   {:<24} {}",
            r["name"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?")
        );
    }
    println!(
        "\nNo duty phone is configured for the consulate, so it sees the alert in its console only.\n\
         Run it for real with `avisa serve` (see the README)."
    );
    let _ = stop.send(());
    server.await.context("the demo server failed")??;
    // The demo is the README's first command and CI runs it as written: a
    // recipient not reached is a failure, not a line of output.
    let missed: Vec<&str> = final_alert["recipients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !matches!(r["status"].as_str(), Some("sent" | "delivered")))
        .map(|r| r["name"].as_str().unwrap_or("?"))
        .collect();
    if !missed.is_empty() {
        bail!("the demo did not reach {}", missed.join(", "));
    }
    Ok(())
}
