//! `--scenario instances --instances N --database URL`: N `avisa serve`
//! processes on one fresh PostgreSQL database, for n = 1 … N. Presses are
//! spread over the instances; each run reports accept and press-to-SMS
//! figures, and from two instances up, one instance is killed with SIGKILL
//! in the middle of a burst: how long until another instance took its
//! messages (the first rise of `avisa_outbox_reclaimed_total` on a
//! survivor), whether every owed message reached the gateway, and how many
//! went twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use avisa_core::now_millis;
use serde_json::json;
use tokio::task::JoinSet;

use crate::prelude::*;

/// Where presses are made with `--offices K`: beside the first K of these
/// offices, one after the other.
const OFFICES: [(f64, f64); 6] = [
    (34.0505, -118.2551), // Los Angeles
    (41.8781, -87.6298),  // Chicago
    (29.7604, -95.3698),  // Houston
    (40.7128, -74.0060),  // New York
    (25.7617, -80.1918),  // Miami
    (33.4484, -112.0740), // Phoenix
];

/// The instances of one run, sharing one database and one master key.
async fn start_instances(
    root: &std::path::Path,
    database: &str,
    n: usize,
    gateway_rate: u32,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Vec<Server>> {
    let mut servers: Vec<Server> = Vec::with_capacity(n);
    for i in 0..n {
        let dir = root.join(format!("instance-{i}"));
        std::fs::create_dir_all(&dir)?;
        let (config, base) = Server::write_config(&dir, Some(database), gateway_rate, "")?;
        let text = std::fs::read_to_string(&config)? + "\n[dispatch]\ntakeover = \"3s\"\n";
        std::fs::write(&config, text)?;
        // One master key for every instance (the first made it).
        let first_key = servers.first().map(|s| s.dir.join("data.key"));
        if let Some(key) = first_key.as_deref().or(key) {
            std::fs::copy(key, dir.join("data.key")).context("the instances' key")?;
        }
        servers.push(Server::start(&dir, &config, &base).await?);
    }
    Ok(servers)
}

/// `count` presses from `clients` clients, spread over the instances:
/// (pressed at, accepted at, message ids) of those accepted, and how many
/// were refused.
async fn spread(
    bases: Vec<String>,
    tokens: Vec<String>,
    count: usize,
    clients: usize,
    tag: &'static str,
    offices: usize,
) -> anyhow::Result<(Vec<(f64, f64, Vec<String>)>, usize)> {
    let offices = offices.clamp(1, OFFICES.len());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let bases = Arc::new(bases);
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let (client, bases, tokens, next, tag) = (
            client.clone(),
            bases.clone(),
            tokens.clone(),
            next.clone(),
            tag.to_string(),
        );
        set.spawn(async move {
            let (mut out, mut refused) = (Vec::new(), 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return (out, refused);
                }
                let pressed = now_millis() as f64;
                let base = &bases[i % bases.len()];
                match press_at(
                    &client,
                    base,
                    &tokens[i % tokens.len()],
                    &format!("{tag}-{i:08}"),
                    OFFICES[i % offices],
                )
                .await
                {
                    Ok((_, ids, _)) => out.push((pressed, now_millis() as f64, ids)),
                    Err(_) => refused += 1,
                }
            }
        });
    }
    let (mut all, mut refused) = (Vec::with_capacity(count), 0);
    while let Some(r) = set.join_next().await {
        let (out, r) = r?;
        all.extend(out);
        refused += r;
    }
    Ok((all, refused))
}

/// Every instance's SMS log: message id → the times it reached the gateway.
fn sent(servers: &[Server]) -> HashMap<String, Vec<f64>> {
    let mut sent: HashMap<String, Vec<f64>> = HashMap::new();
    for s in servers {
        for (id, at) in read_log(&s.sms_log(), 0).0 {
            sent.entry(id).or_default().push(at);
        }
    }
    sent
}

/// Waits until every id in `owed` reached the gateway (or 120 s).
async fn all_sent(servers: &[Server], owed: &[String]) -> HashMap<String, Vec<f64>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sent = sent(servers);
        if owed.iter().all(|id| sent.contains_key(id)) || Instant::now() > deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A press on the second instance until a console stream on the first
/// hears of it, `count` times: the latencies, sorted (ms).
async fn console_latency(
    servers: &[Server],
    database: &str,
    key: &std::path::Path,
    tokens: &[String],
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    const PASSWORD: &str = "a bench password long enough";
    let key = avisa_core::crypto::DataKey::from_base64(&std::fs::read_to_string(key)?)?;
    let store = avisa_store::Store::open(avisa_store::connect(database).await?, &key).await?;
    let hash = store.vault().hash_secret(PASSWORD)?;
    store
        .add_staff(
            "bench.duty",
            &hash,
            "ciam",
            "operator".parse()?,
            now_millis(),
        )
        .await?;
    store.close().await;
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{}/api/v1/console/login", servers[0].base))
        .json(&json!({"username": "bench.duty", "password": PASSWORD}))
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("a session cookie")?
        .to_string();
    let mut stream = client
        .get(format!("{}/api/v1/console/events", servers[0].base))
        .header("cookie", &cookie)
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::with_capacity(count);
    for k in 0..count {
        let started = Instant::now();
        let (id, _, _) = press(
            &client,
            &servers[1].base,
            &tokens[k % tokens.len()],
            &format!("console-{k:06}"),
        )
        .await?;
        let mut seen = String::new();
        while !seen.contains(&id) {
            let left = Duration::from_secs(5).saturating_sub(started.elapsed());
            match tokio::time::timeout(left, stream.chunk()).await {
                Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                _ => bail!("a press on the second instance never reached the first's console"),
            }
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

pub(crate) async fn instances(
    args: &BenchArgs,
    admin: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(admin) = admin else {
        bail!("--scenario instances needs --database (a PostgreSQL server)");
    };
    for n in 1..=args.instances.max(1) {
        let (database, name) = pg_fresh(admin).await?;
        let result = run_n(args, &database, n, report).await;
        pg_drop(admin, &name).await;
        result?;
    }
    Ok(())
}

async fn run_n(
    args: &BenchArgs,
    database: &str,
    n: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    // People first, on one instance (it sends their codes to its own log).
    let mut servers = start_instances(root.path(), database, 1, 0, None).await?;
    let key = root.path().join("data.key");
    std::fs::copy(servers[0].dir.join("data.key"), &key)?;
    let bases = |servers: &[Server]| servers.iter().map(|s| s.base.clone()).collect::<Vec<_>>();
    let tokens = people(&servers[0], args.people.min(300)).await?;
    servers
        .extend(start_instances(&root.path().join("more"), database, n - 1, 0, Some(&key)).await?);
    // Every instance has seen the others beat.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Accept and press to SMS, spread over the instances (and offices).
    let deadlocks_before = pg_deadlocks(database).await?;
    let started = Instant::now();
    let (pressed, refused) = spread(
        bases(&servers),
        tokens.clone(),
        args.alerts,
        args.clients,
        "spread",
        args.offices,
    )
    .await?;
    let deadlocks = pg_deadlocks(database).await? - deadlocks_before;
    let accept_rate = pressed.len() as f64 / started.elapsed().as_secs_f64();
    let mut accept_ms: Vec<f64> = pressed.iter().map(|p| p.1 - p.0).collect();
    accept_ms.sort_by(f64::total_cmp);
    let owed: Vec<String> = pressed.iter().flat_map(|p| p.2.clone()).collect();
    let sent_at = all_sent(&servers, &owed).await;
    let mut e2e: Vec<f64> = pressed
        .iter()
        .filter_map(|(at, _, ids)| {
            ids.iter()
                .filter_map(|id| sent_at.get(id).and_then(|t| t.first()))
                .copied()
                .reduce(f64::min)
                .map(|first| first - at)
        })
        .collect();
    e2e.sort_by(f64::total_cmp);
    let mut rows = vec![
        ("offices", json!(args.offices.clamp(1, OFFICES.len())), ""),
        ("alerts accepted", json!(pressed.len()), ""),
        ("refused", json!(refused), ""),
        ("deadlocks (PostgreSQL)", json!(deadlocks), ""),
        ("accept", json!(accept_rate.round()), "alerts/s"),
        ("accept p50", json!(percentile(&accept_ms, 0.5)), "ms"),
        ("accept p99", json!(percentile(&accept_ms, 0.99)), "ms"),
        ("press to first SMS p50", json!(percentile(&e2e, 0.5)), "ms"),
        (
            "press to first SMS p99",
            json!(percentile(&e2e, 0.99)),
            "ms",
        ),
        (
            "messages lost",
            json!(owed.iter().filter(|id| !sent_at.contains_key(*id)).count()),
            "",
        ),
    ];

    if n >= 2 {
        let console = console_latency(&servers, database, &key, &tokens, 100).await?;
        rows.extend([
            (
                "press on B to A's console p50",
                json!(percentile(&console, 0.5)),
                "ms",
            ),
            (
                "press on B to A's console p99",
                json!(percentile(&console, 0.99)),
                "ms",
            ),
        ]);
        // A burst through a gateway capped at 600/s (split between the
        // instances) keeps messages held by every instance; the last one
        // is killed in the middle of it.
        for s in &mut servers {
            s.stop();
        }
        drop(servers);
        let mut capped =
            start_instances(&root.path().join("capped"), database, n, 600, Some(&key)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut before = Vec::new();
        for s in &capped[..n - 1] {
            before.push(s.metrics().await?);
        }
        let burst = tokio::spawn(spread(
            bases(&capped),
            tokens.clone(),
            args.burst,
            32,
            "takeover",
            args.offices,
        ));
        tokio::time::sleep(Duration::from_millis(700)).await;
        capped.last_mut().context("an instance")?.kill();
        let killed = Instant::now();
        let mut taken_after = None;
        while killed.elapsed() < Duration::from_secs(60) {
            let mut rose = false;
            for (s, b) in capped[..n - 1].iter().zip(&before) {
                if s.metrics().await?.grew(b, "avisa_outbox_reclaimed_total") > 0.0 {
                    rose = true;
                }
            }
            if rose {
                taken_after = Some(killed.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut reclaimed = 0.0;
        for (s, b) in capped[..n - 1].iter().zip(&before) {
            reclaimed += s.metrics().await?.grew(b, "avisa_outbox_reclaimed_total");
        }
        let (burst_pressed, _refused) = burst.await??;
        let owed: Vec<String> = burst_pressed.iter().flat_map(|p| p.2.clone()).collect();
        let sent_at = all_sent(&capped, &owed).await;
        let lost = owed.iter().filter(|id| !sent_at.contains_key(*id)).count();
        let duplicates: usize = owed
            .iter()
            .filter_map(|id| sent_at.get(id))
            .map(|t| t.len().saturating_sub(1))
            .sum();
        rows.extend([
            ("kill: alerts in the burst", json!(burst_pressed.len()), ""),
            (
                "kill: messages taken over after",
                json!(taken_after.map(f64::round)),
                "ms",
            ),
            ("kill: messages it held, taken over", json!(reclaimed), ""),
            ("kill: messages lost", json!(lost), ""),
            ("kill: messages sent twice", json!(duplicates), ""),
        ]);
        for s in &mut capped {
            s.stop();
        }
    } else {
        for s in &mut servers {
            s.stop();
        }
    }
    report.section(&format!("instances: {n}"), rows);
    Ok(())
}
