//! `--scenario abuse`: what an attacker can make Avisa do, with its default
//! limits (issue 33).
//!
//! 1. **Pumping through contacts**: one verified phone loops "press, cancel
//!    with the right PIN" for `--seconds` (at most 60): the SMS its five
//!    contacts get, against the person's budget.
//! 2. **Connection floods**: presses answered (and their p99) from an idle
//!    server, then while 1,000 slow-body connections (a byte every 5 s,
//!    reconnecting when cut) and 1,500 idle ones are held from 50 loopback
//!    addresses — more than `max_connections`.
//! 3. **A code flood**: 120 addresses ask for codes as fast as they can,
//!    never solving the proof of work; meanwhile a person registers as the
//!    app does (solving the challenge when asked): whether and how fast.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

use anyhow::Context as _;

use crate::prelude::*;

/// The defaults, but for what the set-up itself needs: people registered
/// at once from one address.
const DEFAULTS: &str = "[limits]\nregistrations_per_hour = 1000000\ncodes_per_address_per_hour = 1000000\n\
    codes_without_challenge_per_minute = 1000000\nconnections_per_address = 100000\n";

pub(crate) async fn abuse(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    pumping_contacts(args, database, report).await?;
    connection_floods(database, report).await?;
    code_flood(database, report).await?;
    Ok(())
}

/// SMS to the five contacts every bench person has.
fn contact_sms(server: &Server) -> usize {
    std::fs::read_to_string(server.sms_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["to"]
                .as_str()
                .is_some_and(|t| t.starts_with("+1310555000"))
        })
        .filter(|v| v["body"].as_str().is_some_and(|b| b.contains("pide ayuda")))
        .count()
}

async fn pumping_contacts(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config_limits(dir.path(), database, 0, DEFAULTS, "")?;
    let server = Server::start(dir.path(), &config, &base).await?;
    let token = people(&server, 1).await?.remove(0);
    let client = reqwest::Client::new();
    let seconds = args.seconds.clamp(5, 60);
    let started = Instant::now();
    let (mut presses, mut raised) = (0usize, 0usize);
    while started.elapsed() < Duration::from_secs(seconds) {
        presses += 1;
        let Ok((id, _, _)) = press(&client, &base, &token, &format!("pump-{presses:06}")).await
        else {
            continue;
        };
        raised += 1;
        let _ = call(
            &client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/alerts/{id}/cancel"),
            Some(&token),
            json!({"pin": "4821"}),
        )
        .await;
    }
    let took = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sms = contact_sms(&server);
    report.section(
        "abuse: one phone pumping its contacts",
        vec![
            ("press-and-cancel loops", json!(presses), ""),
            ("alerts raised (never refused)", json!(raised), ""),
            ("over", json!((took * 10.0).round() / 10.0), "s"),
            ("alert SMS to its 5 contacts", json!(sms), ""),
            (
                "  per minute",
                json!((sms as f64 * 60.0 / took).round()),
                "SMS/min",
            ),
            (
                "person's budget (US contacts: 1 unit each)",
                json!(120),
                "SMS/hour",
            ),
        ],
    );
    Ok(())
}

/// A socket from `source` to the server.
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).ok()?;
    socket.connect(server).await.ok()
}

/// Holds one connection of a flood until `stop`, reconnecting when the
/// server cuts it: a slow body (headers, then a byte every 5 s) or an idle
/// socket. Counts reconnects.
async fn hold(
    source: Ipv4Addr,
    server: SocketAddr,
    slow: bool,
    stop: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(mut s) = connect_from(source, server).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if slow {
            let head = "POST /api/v1/phone/read HTTP/1.1\r\nhost: avisa\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n{";
            if s.write_all(head.as_bytes()).await.is_err() {
                cuts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let mut buf = [0u8; 512];
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                // Closed or answered (408, 503): cut.
                Ok(_) => break,
                Err(_) if slow => {
                    if s.write_all(b" ").await.is_err() {
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        cuts.fetch_add(1, Ordering::Relaxed);
    }
}

/// `n` presses one after another, each on a new connection as a phone's
/// would be: (answered 202 at once, answered after the app's retry on a
/// refusal, latencies in ms until accepted).
async fn presses(base: &str, tokens: &[String], tag: &str, n: usize) -> (usize, usize, Vec<f64>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let (mut first, mut retried) = (0, 0);
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let key = format!("{tag}-{i:06}");
        let token = &tokens[i % tokens.len()];
        // As the app does: a 503 (or no answer) is sent again with the same
        // key after its Retry-After (1 s), here at most five times.
        for attempt in 0..6 {
            if press(&client, base, token, &key).await.is_ok() {
                if attempt == 0 {
                    first += 1;
                } else {
                    retried += 1;
                }
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    (first, retried, ms)
}

async fn connection_floods(database: Option<&str>, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Default connection limits (64 per address), so the flood comes from
    // fifty addresses, as a botnet's would.
    let limits = "[limits]\nregistrations_per_hour = 1000000\ncodes_per_address_per_hour = 1000000\n\
        codes_without_challenge_per_minute = 1000000\n[alerts]\nrate_limit = 1000000000\n";
    let (config, base) = Server::write_config_limits(dir.path(), database, 0, limits, "")?;
    let server = Server::start(dir.path(), &config, &base).await?;
    let tokens = people(&server, 20).await?;
    let addr: SocketAddr = base.trim_start_matches("http://").parse()?;
    let (idle_ok, _, idle_ms) = presses(&base, &tokens, "calm", 200).await;

    let stop = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let mut flood = JoinSet::new();
    for i in 0..2500usize {
        let slow = i < 1000;
        // 127.0.1.1 … 127.0.1.50: 50 connections each.
        let source = Ipv4Addr::new(127, 0, 1, (1 + i % 50) as u8);
        flood.spawn(hold(source, addr, slow, stop.clone(), cuts.clone()));
    }
    // Let the flood take hold (past a body timeout's first second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (flood_ok, flood_retried, flood_ms) = presses(&base, &tokens, "flood", 200).await;
    stop.store(true, Ordering::Relaxed);
    flood.abort_all();
    let p99 = |ms: &[f64]| percentile(ms, 0.99);
    report.section(
        "abuse: presses under connection floods",
        vec![
            ("presses, idle server", json!(idle_ok), "of 200"),
            ("  p50", json!(percentile(&idle_ms, 0.5)), "ms"),
            ("  p99", json!(p99(&idle_ms)), "ms"),
            (
                "presses under 1,000 slow bodies + 1,500 idle sockets",
                json!(flood_ok),
                "of 200 at once",
            ),
            ("  accepted after the app's retry", json!(flood_retried), ""),
            (
                "  p50 until accepted",
                json!(percentile(&flood_ms, 0.5)),
                "ms",
            ),
            ("  p99 until accepted", json!(p99(&flood_ms)), "ms"),
            (
                "  p99 ÷ idle p99",
                json!((p99(&flood_ms) / p99(&idle_ms) * 10.0).round() / 10.0),
                "×",
            ),
            (
                "flood connections cut and remade",
                json!(cuts.load(Ordering::Relaxed)),
                "",
            ),
        ],
    );
    Ok(())
}

async fn code_flood(database: Option<&str>, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Every code limit at its default.
    let (config, base) = Server::write_config_limits(dir.path(), database, 0, "", "")?;
    let _server = Server::start(dir.path(), &config, &base).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut bots = JoinSet::new();
    for a in 0..120u32 {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 0) | Ipv4Addr::from(a + 1));
        let client = reqwest::Client::builder().local_address(source).build()?;
        let (base, stop, sent, refused) =
            (base.clone(), stop.clone(), sent.clone(), refused.clone());
        bots.spawn(async move {
            for t in 0..15u32 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let phone = format!("+1213{:03}{:04}", 200 + a, t);
                match client
                    .post(format!("{base}/api/v1/devices"))
                    .json(&json!({"phone": phone}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                {
                    Ok(201) => sent.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    // A person, a moment into the flood, registering as the app does.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let person = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 3, 1)))
        .build()?;
    let started = Instant::now();
    let mut registered = None;
    let mut solved = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let body = json!({"phone": "+12135550777"});
        let r = person
            .post(format!("{base}/api/v1/devices"))
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        if status == 201 {
            registered = Some(started.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        if answer["error"]["code"] == "challenge_required" {
            let c: avisa_core::challenge::Challenge = person
                .get(format!("{base}/api/v1/devices/challenge"))
                .send()
                .await?
                .json()
                .await?;
            let solution = avisa_core::challenge::solve(&c).context("unsolvable challenge")?;
            solved += 1;
            let mut with = body.clone();
            with["challenge"] = serde_json::to_value(&solution)?;
            let r = person
                .post(format!("{base}/api/v1/devices"))
                .json(&with)
                .send()
                .await?;
            if r.status().as_u16() == 201 {
                registered = Some(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while bots.join_next().await.is_some() {}
    stop.store(true, Ordering::Relaxed);
    report.section(
        "abuse: a code flood from 120 addresses",
        vec![
            ("bot requests", json!(120 * 15), ""),
            (
                "  codes sent to bots",
                json!(sent.load(Ordering::Relaxed)),
                "",
            ),
            ("  refused", json!(refused.load(Ordering::Relaxed)), ""),
            ("a person registered", json!(registered.is_some()), ""),
            ("  after", json!(registered.map(|ms| ms.round())), "ms"),
            ("  challenges solved", json!(solved), ""),
        ],
    );
    Ok(())
}
