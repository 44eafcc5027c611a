//! The measurements the runs are made of: a burst of presses, the HTTP and
//! store ceilings, the end-to-end rate, fairness under a capped gateway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinSet;

use avisa_core::now_millis;

use crate::prelude::*;

/// One press as the client saw it.
pub(crate) struct Pressed {
    /// Unix ms when the request left, and when its `202` came back.
    pub(crate) pressed: f64,
    pub(crate) accepted: f64,
    /// The alert's recipients, in rank order.
    pub(crate) ids: Vec<String>,
    pub(crate) latency_ms: f64,
}

/// `n` presses (keys `{tag}-{i}`) from `clients` concurrent clients, each
/// pressing again as soon as it is answered.
pub(crate) async fn burst(
    server: &Server,
    tokens: &[String],
    n: usize,
    clients: usize,
    tag: &str,
) -> anyhow::Result<Vec<Pressed>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(tokens.to_vec());
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let (client, next, tokens, base, tag) = (
            client.clone(),
            next.clone(),
            tokens.clone(),
            server.base.clone(),
            tag.to_string(),
        );
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                let pressed = now_millis() as f64;
                let (_, ids, latency_ms) = press(
                    &client,
                    &base,
                    &tokens[i % tokens.len()],
                    &format!("{tag}-{i:08}"),
                )
                .await?;
                out.push(Pressed {
                    pressed,
                    accepted: now_millis() as f64,
                    ids,
                    latency_ms,
                });
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// N alerts from C concurrent clients as fast as possible: alerts/s and the
/// sorted latencies.
pub(crate) async fn accept(
    server: &Server,
    tokens: &[String],
    n: usize,
    clients: usize,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let started = Instant::now();
    let presses = burst(server, tokens, n, clients, "accept").await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = presses.iter().map(|p| p.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    Ok((rate, latencies))
}

/// GET /healthz with the same client and concurrency.
pub(crate) async fn http_ceiling(server: &Server, n: usize, clients: usize) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let (client, next, url) = (
            client.clone(),
            next.clone(),
            format!("{}/healthz", server.base),
        );
        set.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                client.get(&url).send().await?.bytes().await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The store ceilings: alerts/s with one transaction per alert and in
/// batches, and the CPU the batched run used per alert (the bench process is
/// otherwise idle then, so that is the store's own cost of an alert).
pub(crate) struct StoreCeilings {
    pub(crate) single: f64,
    pub(crate) batched: f64,
    pub(crate) batched_cpu_per_alert: f64,
}

/// The store alone, writing what an alert writes: one transaction per alert,
/// then in batches (the group-commit ceiling).
pub(crate) async fn store_ceilings(
    database: Option<&str>,
    dir: &Path,
    single: usize,
    batched: usize,
    batch: usize,
) -> anyhow::Result<StoreCeilings> {
    use avisa_store::{Coverage, MessageKind, NewAlert, NewMessage, Purpose};
    let url = match database {
        Some(u) => u.to_string(),
        None => format!("sqlite:{}", dir.join("ceiling.db").display()),
    };
    let backend = avisa_store::connect(&url).await?;
    let key = avisa_core::crypto::DataKey::generate()?;
    let store = avisa_store::Store::open(backend, &key).await?;
    let phone =
        avisa_core::PhoneNumber::parse("+12135550100").map_err(|e| anyhow::anyhow!("{e}"))?;
    let device = store
        .register_device(
            &phone,
            avisa_core::Language::Es,
            vec![1; 32],
            "123456",
            now_millis() + 600_000,
            now_millis(),
        )
        .await?;
    let avisa_store::VerifyOutcome::Verified { person_id } = store
        .verify_device(device.id, "123456", now_millis())
        .await?
    else {
        bail!("could not make a person");
    };
    let key = store.sealing_key(person_id).await?;
    let make = |i: usize| -> anyhow::Result<avisa_store::SealedAlert> {
        let now = now_millis();
        let messages = (0..6)
            .map(|r| {
                NewMessage::new(
                    avisa_core::Channel::Sms,
                    if r == 5 { MessageKind::SelfPhone } else { MessageKind::Contact },
                    Purpose::Alert,
                    phone.clone(),
                    "Me detuvo inmigración. Llama a la abogada y al consulado, por favor.\nUbicacion: https://www.openstreetmap.org/?mlat=34.05050&mlon=-118.25510 (+/-20 m) a las 12:00 hora del Pacifico.".into(),
                    avisa_core::Language::Es,
                    now + 3_600_000,
                )
                .owned_by(person_id)
                .to_contact(None, Some(format!("Contacto {r}")))
                .ranked(r.min(1))
            })
            .collect();
        Ok(store.seal_alert(
            &NewAlert {
                id: uuid::Uuid::now_v7(),
                person_id,
                device_id: None,
                idempotency_key: format!("ceiling-{i}"),
                source: avisa_core::AlertSource::App,
                practice: false,
                consulate_id: Some("los-angeles".into()),
                coverage: Coverage::Nearest,
                location: Some(avisa_core::Location {
                    lat: 34.05,
                    lon: -118.25,
                    accuracy_m: Some(20.0),
                }),
                caller: None,
                created_at: now,
                messages,
                limit: None,
                // Numbered like a real alert: the counter is part of the commit.
                case_prefix: Some("LAX-2026".into()),
                budget: None,
            },
            &key,
        )?)
    };
    let one: Vec<_> = (0..single).map(make).collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    for a in &one {
        store.insert_alerts(std::slice::from_ref(a)).await?;
    }
    let single_rate = single as f64 / started.elapsed().as_secs_f64();
    let many: Vec<_> = (single..single + batched)
        .map(make)
        .collect::<anyhow::Result<_>>()?;
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    for chunk in many.chunks(batch) {
        store.insert_alerts(chunk).await?;
    }
    let batched_rate = batched as f64 / started.elapsed().as_secs_f64();
    let batched_cpu = cpu_seconds("self") - cpu_before;
    store.close().await;
    Ok(StoreCeilings {
        single: single_rate,
        batched: batched_rate,
        batched_cpu_per_alert: batched_cpu / batched as f64,
    })
}

/// Sustained R alerts/s for T seconds; press → messages at the gateway.
pub(crate) async fn end_to_end(
    server: &Server,
    tokens: &[String],
    rate: usize,
    seconds: u64,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize, usize)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let (_, mut offset) = read_log(&server.sms_log(), 0);
    let total = rate * seconds as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut set = JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let (client, base, token) = (
            client.clone(),
            server.base.clone(),
            tokens[i % tokens.len()].clone(),
        );
        set.spawn(async move {
            let pressed = now_millis() as f64;
            let r = press(&client, &base, &token, &format!("e2e-{i:08}")).await;
            r.map(|(_, ids, _)| (pressed, ids))
        });
    }
    let mut owed: HashMap<String, usize> = HashMap::new();
    let mut alerts: Vec<(f64, usize)> = Vec::new(); // (pressed, messages)
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        match r? {
            Ok((pressed, ids)) => {
                let idx = alerts.len();
                alerts.push((pressed, ids.len()));
                for id in ids {
                    owed.insert(id, idx);
                }
            }
            Err(_) => failed += 1,
        }
    }
    // Collect gateway times until every message arrived (or 60 s).
    let mut first = vec![f64::INFINITY; alerts.len()];
    let mut last = vec![0.0_f64; alerts.len()];
    let mut seen = vec![0usize; alerts.len()];
    let mut remaining = owed.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 && Instant::now() < deadline {
        let (lines, next) = read_log(&server.sms_log(), offset);
        offset = next;
        for (id, at) in lines {
            if let Some(&a) = owed.get(&id) {
                first[a] = first[a].min(at);
                last[a] = last[a].max(at);
                seen[a] += 1;
                if seen[a] <= alerts[a].1 {
                    remaining -= 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let complete: Vec<usize> = (0..alerts.len())
        .filter(|&a| seen[a] >= alerts[a].1)
        .collect();
    let mut to_last: Vec<f64> = complete.iter().map(|&a| last[a] - alerts[a].0).collect();
    let mut to_first: Vec<f64> = complete.iter().map(|&a| first[a] - alerts[a].0).collect();
    to_last.sort_by(f64::total_cmp);
    to_first.sort_by(f64::total_cmp);
    Ok((to_first, to_last, alerts.len() - complete.len(), failed))
}

/// What the fairness run measured.
pub(crate) struct Fairness {
    /// Press to first message at the gateway, per alert (ms, sorted).
    pub(crate) to_first: Vec<f64>,
    /// Third messages that reached the gateway while an accepted alert was
    /// still waiting for its first.
    pub(crate) violations: usize,
    /// Third messages that reached the gateway before the burst's last
    /// first message, counting alerts not yet pressed or accepted then.
    pub(crate) before_last_first: usize,
    pub(crate) drain_seconds: f64,
}

/// A burst under a gateway cap: time to each alert's first message, and
/// fairness violations (an alert's third message at the gateway while some
/// other accepted alert still waited for its first).
pub(crate) async fn fairness(
    server: &Server,
    tokens: &[String],
    n: usize,
) -> anyhow::Result<Fairness> {
    let (_, mut offset) = read_log(&server.sms_log(), 0);
    let alerts = burst(server, tokens, n, 32, "fair").await?;
    // recipients come in rank order: [contact0 (rank 0), contact1 (1), self (1), contact2 (2), …]
    let mut rank_of: HashMap<String, (usize, usize)> = HashMap::new();
    for (a, p) in alerts.iter().enumerate() {
        for (pos, id) in p.ids.iter().enumerate() {
            rank_of.insert(id.clone(), (a, pos));
        }
    }
    let total: usize = alerts.iter().map(|p| p.ids.len()).sum();
    let mut order: Vec<(f64, usize, usize)> = Vec::with_capacity(total);
    let started = Instant::now();
    let deadline = started + Duration::from_secs((total as u64 / 10).max(120));
    while order.len() < total && Instant::now() < deadline {
        let (lines, next) = read_log(&server.sms_log(), offset);
        offset = next;
        for (id, at) in lines {
            if let Some(&(a, pos)) = rank_of.get(&id) {
                order.push((at, a, pos));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    let mut first = vec![f64::INFINITY; alerts.len()];
    for (at, a, pos) in &order {
        if *pos == 0 {
            first[*a] = first[*a].min(*at);
        }
    }
    let last_first = first.iter().cloned().fold(0.0_f64, f64::max);
    // A violation: a third message (position 3: after the first contact, the
    // second contact and the person's own confirmation, ranks 0 and 1) that
    // reached the gateway before the last alert's first message did.
    let thirds: Vec<f64> = order
        .iter()
        .filter(|(_, _, pos)| *pos >= 3)
        .map(|(at, _, _)| *at)
        .collect();
    let before_last_first = thirds.iter().filter(|at| **at < last_first).count();
    // An alert the server had accepted (the client had its 202; the log's
    // times are the same clock) but not yet given its first message.
    let violations = thirds
        .iter()
        .filter(|at| {
            alerts
                .iter()
                .zip(&first)
                .any(|(p, first)| p.accepted <= **at && **at < *first)
        })
        .count();
    let mut to_first: Vec<f64> = first
        .iter()
        .zip(&alerts)
        .map(|(f, p)| f - p.pressed)
        .collect();
    to_first.sort_by(f64::total_cmp);
    Ok(Fairness {
        to_first,
        violations,
        before_last_first,
        drain_seconds,
    })
}
