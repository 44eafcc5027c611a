//! The timers run: many check-in timers due in the same minute (a morning
//! of appointments at one ICE office), none checked out. What it shows: how
//! late each one's alert is raised after its deadline — the target is every
//! one within 60 s — and the server's CPU and memory meanwhile.
//!
//! `--people` people (10 timers each, the most one may have) schedule
//! through the real API; the deadlines are spread evenly over one minute
//! that starts once every timer is scheduled. Each timer's alert time comes
//! back through the API (the timer's `alert_id`, the alert's `created_at`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use avisa_core::now_millis;

use crate::prelude::*;

/// Timers per person: the most the API allows.
const PER_PERSON: usize = 10;

fn rfc3339(ms: i64) -> anyhow::Result<String> {
    Ok(OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)?.format(&Rfc3339)?)
}

/// An unlock for each person (checkins need it), by their PIN: a few at a
/// time, as the server's bounded hashing pool takes them (a 503 `busy` is
/// waited out).
async fn unlocks(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut set = JoinSet::new();
    let mut out = vec![String::new(); tokens.len()];
    for (i, token) in tokens.iter().cloned().enumerate() {
        let (client, base) = (client.clone(), base.to_string());
        set.spawn(async move {
            loop {
                let (s, v) = call(
                    &client,
                    reqwest::Method::POST,
                    &format!("{base}/api/v1/pin/check"),
                    Some(&token),
                    json!({"pin": "4821"}),
                )
                .await?;
                match s {
                    200 => {
                        let unlock = v["unlock"].as_str().unwrap_or_default().to_string();
                        return Ok::<_, anyhow::Error>((i, unlock));
                    }
                    503 => tokio::time::sleep(Duration::from_millis(200)).await,
                    _ => bail!("PIN check refused: {s} {v}"),
                }
            }
        });
        if set.len() >= 4 {
            let (i, u) = set.join_next().await.context("join")???;
            out[i] = u;
        }
    }
    while let Some(r) = set.join_next().await {
        let (i, u) = r??;
        out[i] = u;
    }
    Ok(out)
}

pub(crate) async fn timers(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config(dir.path(), database, args.gateway_rate, "")?;
    let server = Server::start(dir.path(), &config, &base).await?;
    let people_n = args.people;
    let total = people_n * PER_PERSON;
    eprintln!("timers: registering {people_n} people…");
    let tokens = people(&server, people_n).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let keys = unlocks(&client, &base, &tokens).await?;

    // Scheduling takes a while: the due minute starts once it is surely done
    // (measured on a first person, with room to spare).
    let probe = Instant::now();
    let window_ms: i64 = 60_000;
    let start_guess = now_millis() + 3_600_000;
    let appointment = rfc3339(now_millis() + 30_000)?;
    let schedule_one = {
        let (client, base) = (client.clone(), base.clone());
        move |token: String, unlock: String, deadline: i64| {
            let (client, base, appointment) = (client.clone(), base.clone(), appointment.clone());
            async move {
                let (s, v) = call_unlocked(&client, reqwest::Method::POST, &format!("{base}/api/v1/checkins"), Some(&token), Some(&unlock),
                    json!({"appointment_at": appointment, "deadline": rfc3339(deadline)?, "place": "Oficina de ICE, 300 N Los Angeles St", "note": "Cita de revisión."})).await?;
                if s != 201 {
                    bail!("timer refused: {s} {v}");
                }
                Ok::<_, anyhow::Error>(v["id"].as_str().unwrap_or_default().to_string())
            }
        }
    };
    // A throwaway timer far ahead, to time one scheduling round trip.
    schedule_one(tokens[0].clone(), keys[0].clone(), start_guess).await?;
    let one = probe.elapsed().as_secs_f64();
    let lead_ms = ((one * total as f64 / 8.0) * 1000.0 * 3.0) as i64 + 30_000;
    let due_from = now_millis() + lead_ms.max(45_000);
    eprintln!(
        "timers: scheduling {total} timers due between +{}s and +{}s…",
        lead_ms.max(45_000) / 1000,
        (lead_ms.max(45_000) + window_ms) / 1000
    );
    let mut set = JoinSet::new();
    let mut ids: Vec<(usize, i64, String)> = Vec::with_capacity(total);
    // The throwaway timer takes one of the first person's ten places.
    for k in 0..total.saturating_sub(1) {
        let person = (k + 1) % people_n;
        let deadline = due_from + window_ms * k as i64 / total as i64;
        let fut = schedule_one(tokens[person].clone(), keys[person].clone(), deadline);
        set.spawn(async move { fut.await.map(|id| (person, deadline, id)) });
        if set.len() >= 8 {
            ids.push(set.join_next().await.context("join")???);
        }
    }
    while let Some(r) = set.join_next().await {
        ids.push(r??);
    }
    if now_millis() >= due_from {
        bail!("scheduling took longer than the lead it allowed");
    }
    let cpu_before = server.cpu_seconds();
    // The minute passes; then every timer is read back (retried for up to
    // three minutes while alerts are still being raised).
    let wait = (due_from + window_ms + 5_000 - now_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    // Read every timer back (a fresh unlock: the first ones may be old).
    let keys = unlocks(&client, &base, &tokens).await?;
    let mut delays: Vec<f64> = Vec::with_capacity(total);
    let mut fired = 0usize;
    let deadline_of: std::collections::HashMap<String, i64> =
        ids.iter().map(|(_, d, id)| (id.clone(), *d)).collect();
    let read_until = Instant::now() + Duration::from_secs(180);
    let mut pending: Vec<usize> = (0..people_n).collect();
    let mut alerts_of: std::collections::HashMap<String, String> = Default::default();
    while !pending.is_empty() && Instant::now() < read_until {
        let mut still = Vec::new();
        for &p in &pending {
            let (s, v) = call_unlocked(
                &client,
                reqwest::Method::GET,
                &format!("{base}/api/v1/checkins"),
                Some(&tokens[p]),
                Some(&keys[p]),
                Value::Null,
            )
            .await?;
            if s != 200 {
                bail!("listing timers refused: {s} {v}");
            }
            let list = v["checkins"].as_array().cloned().unwrap_or_default();
            let mut waiting = false;
            for c in list {
                let id = c["id"].as_str().unwrap_or_default().to_string();
                if !deadline_of.contains_key(&id) {
                    continue;
                }
                match c["alert_id"].as_str() {
                    Some(a) => {
                        alerts_of.insert(id, a.to_string());
                    }
                    None => waiting = true,
                }
            }
            if waiting {
                still.push(p);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let cpu = server.cpu_seconds() - cpu_before;
    let (rss_now, rss_peak) = server.memory_kb();
    let mut by_person: std::collections::HashMap<String, usize> = Default::default();
    for (p, _, id) in &ids {
        by_person.insert(id.clone(), *p);
    }
    for (timer, alert) in &alerts_of {
        let p = by_person[timer];
        let (s, v) = call(
            &client,
            reqwest::Method::GET,
            &format!("{base}/api/v1/alerts/{alert}"),
            Some(&tokens[p]),
            Value::Null,
        )
        .await?;
        if s != 200 {
            continue;
        }
        if let Some(created) = v["created_at"].as_i64() {
            fired += 1;
            delays.push((created - deadline_of[timer]) as f64 / 1000.0);
        }
    }
    delays.sort_by(|a, b| a.total_cmp(b));
    let within = delays.iter().filter(|d| **d <= 60.0).count();
    report.section(
        &format!(
            "timers ({}, {total} due within one minute)",
            if database.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        ),
        vec![
            ("timers scheduled", json!(ids.len()), ""),
            ("alerts raised", json!(fired), ""),
            ("raised within 60 s of the deadline", json!(within), ""),
            (
                "delay after the deadline, p50",
                json!(percentile(&delays, 0.5)),
                "s",
            ),
            (
                "delay after the deadline, p99",
                json!(percentile(&delays, 0.99)),
                "s",
            ),
            (
                "delay after the deadline, max",
                json!(delays.last().copied().unwrap_or(f64::NAN)),
                "s",
            ),
            (
                "server CPU while they fell due and were read back",
                json!(cpu),
                "s",
            ),
            (
                "server RSS now / peak",
                json!(format!("{} / {} MB", rss_now / 1024, rss_peak / 1024)),
                "",
            ),
        ],
    );
    Ok(())
}
