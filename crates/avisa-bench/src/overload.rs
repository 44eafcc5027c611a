//! `--scenario overload --rate R --seconds S`: presses offered at R per
//! second for S seconds, open loop (each at its time, whether or not the
//! ones before were answered), more than the server can take. What a
//! server that sheds load honestly shows: every press answered — accepted,
//! or 503 with Retry-After for the app to send again — quickly, and memory
//! bounded.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use crate::prelude::*;

pub(crate) async fn overload(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config(dir.path(), database, 0, "")?;
    let server = Server::start(dir.path(), &config, &base).await?;
    let tokens = people(&server, args.people).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = server.memory_kb();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(60))
        .build()?;
    let rate = args.rate.unwrap_or(1000);
    let offered = rate * args.seconds as usize;
    let started = Instant::now();
    let mut set = JoinSet::new();
    let mut peak_rss = 0u64;
    for i in 0..offered {
        let at = started + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(at.into()).await;
        if i % 100 == 0 {
            peak_rss = peak_rss.max(server.memory_kb().0);
        }
        let (client, url, token) = (
            client.clone(),
            format!("{base}/api/v1/alerts"),
            tokens[i % tokens.len()].clone(),
        );
        set.spawn(async move {
            let sent = Instant::now();
            let status = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"idempotency_key": format!("overload-{i:08}"), "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 20}}))
                .send()
                .await
                .map(|r| (r.status().as_u16(), r.headers().contains_key("retry-after")))
                .unwrap_or((0, false));
            (status, sent.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let offered_for = started.elapsed().as_secs_f64();
    let (mut accepted, mut shed, mut shed_with_retry, mut other) = (0usize, 0usize, 0usize, 0usize);
    let mut latencies = Vec::with_capacity(offered);
    while let Some(done) = set.join_next().await {
        let ((status, retry_after), ms) = done?;
        match status {
            202 => accepted += 1,
            503 => {
                shed += 1;
                if retry_after {
                    shed_with_retry += 1;
                }
            }
            _ => other += 1,
        }
        latencies.push(ms);
    }
    let (_, hwm) = server.memory_kb();
    latencies.sort_by(f64::total_cmp);
    let within_2s = latencies.iter().filter(|ms| **ms <= 2000.0).count();
    report.section(
        "overload",
        vec![
            ("offered", json!(offered), "presses"),
            (
                "offered over",
                json!((offered_for * 10.0).round() / 10.0),
                "s",
            ),
            ("accepted (202)", json!(accepted), ""),
            (
                "accepted rate",
                json!((accepted as f64 / offered_for).round()),
                "alerts/s",
            ),
            ("refused 503", json!(shed), ""),
            ("  of which with Retry-After", json!(shed_with_retry), ""),
            ("other answers or none", json!(other), ""),
            ("answer p50", json!(percentile(&latencies, 0.5)), "ms"),
            ("answer p99", json!(percentile(&latencies, 0.99)), "ms"),
            (
                "answer max",
                json!(latencies.last().copied().unwrap_or(f64::NAN)),
                "ms",
            ),
            (
                "answered within 2 s",
                json!((within_2s as f64 * 1000.0 / offered.max(1) as f64).round() / 10.0),
                "%",
            ),
            ("RSS idle", json!(idle_rss / 1024), "MB"),
            ("RSS peak (VmHWM)", json!(hwm.max(peak_rss) / 1024), "MB"),
        ],
    );
    Ok(())
}
