//! The pumping run: a flood of verification codes (the SMS anyone can make
//! Avisa send) at the gateway's cap while people press. Every code budget is
//! lifted, so the codes really fill the gateway: the worst case for alerts.
//! What it shows: a code never waits ahead of an alert — each press's first
//! message reaches the gateway within a second (the target, at p99).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use avisa_core::now_millis;

use crate::prelude::*;

pub(crate) async fn pumping(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config(dir.path(), database, args.gateway_rate, "")?;
    let server = Server::start(dir.path(), &config, &base).await?;
    let tokens = people(&server, args.people.min(50)).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let (_, start_offset) = read_log(&server.sms_log(), 0);
    let seconds = args.seconds;
    let stop = Instant::now() + Duration::from_secs(seconds);

    // The flood: 8 clients registering fresh numbers as fast as answered.
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut flood = JoinSet::new();
    for _ in 0..8 {
        let (client, base, next, accepted, refused) = (
            client.clone(),
            base.clone(),
            next.clone(),
            accepted.clone(),
            refused.clone(),
        );
        flood.spawn(async move {
            while Instant::now() < stop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let phone = format!("+1310{}", 2_000_000 + i);
                let status = client
                    .post(format!("{base}/api/v1/devices"))
                    .json(&json!({"phone": phone}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                match status {
                    Ok(201) => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    // Meanwhile, a press every half second (after a second of flood).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut presses: Vec<(f64, String)> = Vec::new();
    let mut alert_messages: HashSet<String> = HashSet::new();
    let mut failed = 0usize;
    let mut i = 0usize;
    while Instant::now() < stop {
        let pressed = now_millis() as f64;
        match press(
            &client,
            &base,
            &tokens[i % tokens.len()],
            &format!("pump-{i:08}"),
        )
        .await
        {
            Ok((_, ids, _)) => {
                if let Some(first) = ids.first() {
                    presses.push((pressed, first.clone()));
                }
                alert_messages.extend(ids);
            }
            Err(_) => failed += 1,
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while flood.join_next().await.is_some() {}

    // Each press's first message at the gateway.
    let owed: HashMap<&str, usize> = presses
        .iter()
        .enumerate()
        .map(|(n, (_, id))| (id.as_str(), n))
        .collect();
    let mut first = vec![f64::NAN; presses.len()];
    let mut lines_in_run = 0usize;
    let mut codes_at_gateway = 0usize;
    let mut offset = start_offset;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut found = 0;
    while found < presses.len() && Instant::now() < deadline {
        let (lines, next) = read_log(&server.sms_log(), offset);
        offset = next;
        lines_in_run += lines.len();
        for (id, at) in lines {
            if !alert_messages.contains(&id) {
                codes_at_gateway += 1;
            }
            if let Some(&n) = owed.get(id.as_str())
                && first[n].is_nan()
            {
                first[n] = at;
                found += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What else reached the gateway by now.
    let (lines, _) = read_log(&server.sms_log(), offset);
    lines_in_run += lines.len();
    codes_at_gateway += lines
        .iter()
        .filter(|(id, _)| !alert_messages.contains(id))
        .count();
    let mut waits: Vec<f64> = presses
        .iter()
        .zip(&first)
        .filter(|(_, f)| !f.is_nan())
        .map(|((pressed, _), f)| f - pressed)
        .collect();
    waits.sort_by(f64::total_cmp);
    if !args.json {
        println!(
            "avisa-bench pumping — {seconds} s of verification codes from 8 clients at a gateway capped at {} SMS/s, a press every 0.5 s; {} cores",
            args.gateway_rate,
            cores()
        );
    }
    report.section(
        "pumping",
        vec![
            ("codes asked for", json!(next.load(Ordering::Relaxed)), ""),
            (
                "codes accepted (201)",
                json!(accepted.load(Ordering::Relaxed)),
                "",
            ),
            ("codes refused", json!(refused.load(Ordering::Relaxed)), ""),
            (
                "SMS at the gateway during the run (all kinds)",
                json!(lines_in_run),
                "",
            ),
            (
                "of which not an alert's (codes)",
                json!(codes_at_gateway),
                "",
            ),
            ("presses accepted", json!(presses.len()), ""),
            ("presses refused", json!(failed), ""),
            (
                "first message never reached the gateway",
                json!(presses.len() - waits.len()),
                "",
            ),
            (
                "press → first alert message p50",
                json!(percentile(&waits, 0.5)),
                "ms",
            ),
            (
                "press → first alert message p99",
                json!(percentile(&waits, 0.99)),
                "ms",
            ),
            (
                "press → first alert message max",
                json!(waits.last().copied().unwrap_or(f64::NAN)),
                "ms",
            ),
            ("target p99", json!(1000.0), "ms"),
        ],
    );
    Ok(())
}
