//! Simulated people: registered through the real API with five contacts
//! each, and their presses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::prelude::*;

pub(crate) async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    call_unlocked(client, method, url, token, None, body).await
}

/// As [`call`], with the unlock the PIN earned (contacts need it).
pub(crate) async fn call_unlocked(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    unlock: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(u) = unlock {
        req = req.header("x-avisa-unlock", u);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Registers `n` people with 5 contacts each through the API; returns tokens.
pub(crate) async fn people(server: &Server, n: usize) -> anyhow::Result<Vec<String>> {
    people_via(server, n, None).await
}

/// As [`people`]; codes a fake provider took are read from it too.
pub(crate) async fn people_via(
    server: &Server,
    n: usize,
    fake: Option<&avisa_testkit::FakeTwilio>,
) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let base = &server.base;
    let mut tokens = Vec::with_capacity(n);
    let mut phones = Vec::with_capacity(n);
    const AREAS: [u32; 6] = [213, 310, 323, 424, 626, 818];
    if n > AREAS.len() * 10_000 {
        bail!("at most {} simulated people", AREAS.len() * 10_000);
    }
    for i in 0..n {
        let phone = format!("+1{}555{:04}", AREAS[i / 10_000], i % 10_000);
        let (s, v) = call(
            &client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/devices"),
            None,
            json!({"phone": phone}),
        )
        .await?;
        if s != 201 {
            bail!("registration refused: {s} {v}");
        }
        tokens.push(v["token"].as_str().unwrap_or("").to_string());
        phones.push(phone);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let codes: HashMap<String, String> = loop {
        let text = std::fs::read_to_string(server.sms_log()).unwrap_or_default();
        let code_of = |body: &str| {
            body.split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_string)
        };
        let mut map: HashMap<String, String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| Some((v["to"].as_str()?.to_string(), code_of(v["body"].as_str()?)?)))
            .collect();
        if let Some(fake) = fake {
            for m in fake.accepted() {
                if let Some(code) = code_of(&m.body) {
                    map.insert(m.to, code);
                }
            }
        }
        if phones.iter().all(|p| map.contains_key(p)) {
            break map;
        }
        if Instant::now() > deadline {
            bail!("verification codes did not arrive");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut set = JoinSet::new();
    for (token, phone) in tokens.iter().cloned().zip(phones.iter().cloned()) {
        let (client, base, code) = (client.clone(), base.clone(), codes[&phone].clone());
        set.spawn(async move {
            call(&client, reqwest::Method::POST, &format!("{base}/api/v1/devices/verify"), Some(&token), json!({"code": code})).await?;
            let (_, profile) = call(&client, reqwest::Method::PUT, &format!("{base}/api/v1/profile"), Some(&token),
                json!({"name": "Persona de Prueba", "home_state": "CA", "home_county": "Los Angeles", "cancel_pin": "4821", "keyword": "auxilio"})).await?;
            let unlock = profile["unlock"].as_str().map(str::to_string);
            for c in 0..5 {
                let (s, v) = call_unlocked(&client, reqwest::Method::POST, &format!("{base}/api/v1/contacts"), Some(&token), unlock.as_deref(),
                    json!({"name": format!("Contacto {c}"), "phone": format!("+1310555{:04}", c), "language": "es", "message": "Me detuvo inmigración. Llama a la abogada y al consulado, por favor."})).await?;
                if s != 201 {
                    bail!("contact refused: {s} {v}");
                }
            }
            Ok::<_, anyhow::Error>(())
        });
        if set.len() >= 16 {
            set.join_next().await.context("join")???;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(tokens)
}

/// One press in Los Angeles: (alert id, recipient ids, accept latency ms).
pub(crate) async fn press(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
) -> anyhow::Result<(String, Vec<String>, f64)> {
    press_at(client, base, token, key, (34.0505, -118.2551)).await
}

/// One press at (lat, lon): (alert id, recipient ids, accept latency ms).
pub(crate) async fn press_at(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    (lat, lon): (f64, f64),
) -> anyhow::Result<(String, Vec<String>, f64)> {
    let started = Instant::now();
    let (s, v) = call(
        client,
        reqwest::Method::POST,
        &format!("{base}/api/v1/alerts"),
        Some(token),
        json!({"idempotency_key": key, "location": {"lat": lat, "lon": lon, "accuracy_m": 20}}),
    )
    .await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if s != 202 {
        bail!("press refused: {s} {v}");
    }
    let ids = v["recipients"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((v["alert_id"].as_str().unwrap_or("").to_string(), ids, ms))
}
