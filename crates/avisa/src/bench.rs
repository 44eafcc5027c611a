//! `avisa bench`: the load benchmark. A program that prints numbers, never a
//! test with timing asserts.
//!
//! It starts `avisa serve` as a child process (so its memory and CPU are its
//! own) on a temporary data directory, with the `log` gateway as the instant
//! local SMS gateway (optionally rate-capped; `sms-log.jsonl` gives the time
//! each message reached it), registers simulated people with five contacts
//! each through the real API, and runs the scenarios. The fault runs add
//! SIGKILLs (`crash`) and a faulty provider (`faults`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use avisa_core::now_millis;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// all (accept, ceilings, e2e, fairness, resources), or one of those, or
    /// crash, or faults.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Run on PostgreSQL: a fresh database is created on this server (and
    /// dropped after).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Simulated people (each with 5 contacts).
    #[arg(long, default_value_t = 200)]
    pub people: usize,
    /// accept: alerts to send.
    #[arg(long, default_value_t = 10_000)]
    pub alerts: usize,
    /// accept and ceilings: concurrent clients (phones pressing at once; a
    /// group commit can hold at most this many alerts).
    #[arg(long, default_value_t = 128)]
    pub clients: usize,
    /// e2e: alerts per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: usize,
    /// e2e: seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// fairness: the gateway's cap, messages per second.
    #[arg(long, default_value_t = 100)]
    pub gateway_rate: u32,
    /// fairness and crash: alerts in the burst.
    #[arg(long, default_value_t = 1000)]
    pub burst: usize,
    /// crash: how many times the server is killed.
    #[arg(long, default_value_t = 3)]
    pub kills: usize,
}

// ---- figures -------------------------------------------------------------------

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Report {
    json: bool,
    all: serde_json::Map<String, Value>,
}

impl Report {
    fn section(&mut self, name: &str, rows: Vec<(&str, Value, &str)>) {
        if !self.json {
            println!("\n== {name}");
            for (k, v, unit) in &rows {
                let shown = match v {
                    // Ratios and small figures keep two decimals.
                    Value::Number(n) if n.is_f64() => match n.as_f64().unwrap_or(f64::NAN) {
                        x if x.abs() < 10.0 => format!("{x:.2}"),
                        x => format!("{x:.1}"),
                    },
                    // A mean of nothing.
                    Value::Null => "none".to_string(),
                    other => other.to_string(),
                };
                println!("  {k:<50} {shown:>12} {unit}");
            }
        }
        let obj: serde_json::Map<String, Value> = rows
            .into_iter()
            .map(|(k, v, _)| (k.to_string(), v))
            .collect();
        self.all.insert(name.to_string(), Value::Object(obj));
    }
}

// ---- the server under test --------------------------------------------------------

struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    config: PathBuf,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    fn write_config(
        dir: &Path,
        database: Option<&str>,
        gateway_rate: u32,
        extra: &str,
    ) -> anyhow::Result<(PathBuf, String)> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let config = dir.join("avisa.toml");
        let database = database
            .map(|d| format!("database_url = \"{d}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npublic_url = \"{base}\"\n{database}\
                 [limits]\nregistrations_per_hour = 1000000\n\
                 [alerts]\nrate_limit = 1000000000\n\
                 [sms]\nlog_echo = false\n{extra}\n[sms.log]\nrate_per_second = {gateway_rate}\n",
                dir.join("data").display()
            ),
        )?;
        Ok((config, base))
    }

    async fn start(dir: &Path, config: &Path, base: &str) -> anyhow::Result<Server> {
        let child = Command::new(std::env::current_exe()?)
            .args(["--config", config.to_str().context("utf-8 path")?, "serve"])
            .env("AVISA_LOG", "error")
            .env_remove("AVISA_DATA_KEY")
            .env_remove("AVISA_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start avisa serve")?;
        let server = Server {
            child,
            base: base.to_string(),
            dir: dir.to_path_buf(),
            config: config.to_path_buf(),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Starts the server again on the same data (after a kill).
    async fn restart(&mut self) -> anyhow::Result<()> {
        *self = Server::start(&self.dir, &self.config, &self.base).await?;
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in kB.
    fn memory_kb(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU seconds used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.pid().to_string())
    }

    /// The `_sum` and `_count` of the server's unlabelled histograms, and
    /// its unlabelled `_total` counters, on `/metrics`: where a run's time
    /// went inside the server.
    async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        Ok(Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(' '))
                .filter(|(name, _)| {
                    name.ends_with("_sum") || name.ends_with("_count") || name.ends_with("_total")
                })
                .filter_map(|(name, v)| Some((name.to_string(), v.trim().parse().ok()?)))
                .collect(),
        ))
    }

    fn sms_log(&self) -> PathBuf {
        self.dir.join("data").join("sms-log.jsonl")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A run that fails half-way leaves no server behind.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The SMS log: (outbox id, unix ms it reached the gateway).
fn read_log(path: &Path, from: usize) -> (Vec<(String, f64)>, usize) {
    let text = std::fs::read(path).unwrap_or_default();
    let slice = &text[from.min(text.len())..];
    let complete = slice
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let mut out = Vec::new();
    for line in slice[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let at = v["at"]
            .as_str()
            .and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| (t.unix_timestamp_nanos() / 1_000) as f64 / 1000.0)
            .unwrap_or(f64::NAN);
        out.push((v["id"].as_str().unwrap_or("").to_string(), at));
    }
    (out, from + complete)
}

/// Histogram sums and counts, and counters, read from `/metrics` (see
/// [`Server::metrics`]).
struct Metrics(HashMap<String, f64>);

impl Metrics {
    /// Observations of `name` since `before`, and their mean (NaN if none).
    fn since(&self, before: &Metrics, name: &str) -> (f64, f64) {
        let get = |h: &Metrics, suffix: &str| {
            h.0.get(&format!("{name}_{suffix}")).copied().unwrap_or(0.0)
        };
        let count = get(self, "count") - get(before, "count");
        let sum = get(self, "sum") - get(before, "sum");
        (count, if count > 0.0 { sum / count } else { f64::NAN })
    }

    /// How much the counter `name` grew since `before`.
    fn grew(&self, before: &Metrics, name: &str) -> f64 {
        let get = |h: &Metrics| h.0.get(name).copied().unwrap_or(0.0);
        get(self) - get(before)
    }
}

// ---- simulated people ----------------------------------------------------------------

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Registers `n` people with 5 contacts each through the API; returns tokens.
async fn people(server: &Server, n: usize) -> anyhow::Result<Vec<String>> {
    people_via(server, n, None).await
}

/// As [`people`]; codes a fake provider took are read from it too.
async fn people_via(
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
            call(&client, reqwest::Method::PUT, &format!("{base}/api/v1/profile"), Some(&token),
                json!({"name": "Persona de Prueba", "home_state": "CA", "home_county": "Los Angeles", "cancel_pin": "4821", "keyword": "auxilio"})).await?;
            for c in 0..5 {
                let (s, v) = call(&client, reqwest::Method::POST, &format!("{base}/api/v1/contacts"), Some(&token),
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

/// One press: (alert id, recipient ids, accept latency ms).
async fn press(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
) -> anyhow::Result<(String, Vec<String>, f64)> {
    let started = Instant::now();
    let (s, v) = call(client, reqwest::Method::POST, &format!("{base}/api/v1/alerts"), Some(token),
        json!({"idempotency_key": key, "location": {"lat": 34.0505, "lon": -118.2551, "accuracy_m": 20}})).await?;
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

// ---- scenarios ------------------------------------------------------------------------

/// One press as the client saw it.
struct Pressed {
    /// Unix ms when the request left, and when its `202` came back.
    pressed: f64,
    accepted: f64,
    /// The alert's recipients, in rank order.
    ids: Vec<String>,
    latency_ms: f64,
}

/// `n` presses (keys `{tag}-{i}`) from `clients` concurrent clients, each
/// pressing again as soon as it is answered.
async fn burst(
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
async fn accept(
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

/// The CPU cores this machine gives the bench and the server.
fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// CPU seconds (user + system) a process used so far: a pid, or "self" for
/// the bench (its client and, in the store ceilings, the store).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ")".
    (ticks(11) + ticks(12)) / 100.0
}

/// GET /healthz with the same client and concurrency.
async fn http_ceiling(server: &Server, n: usize, clients: usize) -> anyhow::Result<f64> {
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
struct StoreCeilings {
    single: f64,
    batched: f64,
    batched_cpu_per_alert: f64,
}

/// The store alone, writing what an alert writes: one transaction per alert,
/// then in batches (the group-commit ceiling).
async fn store_ceilings(
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
    let make = |i: usize| -> anyhow::Result<avisa_store::SealedAlert> {
        let now = now_millis();
        let messages = (0..6)
            .map(|r| NewMessage {
                id: uuid::Uuid::now_v7(),
                kind: if r == 5 { MessageKind::SelfPhone } else { MessageKind::Contact },
                purpose: Purpose::Alert,
                contact_id: None,
                parent_id: None,
                name: Some(format!("Contacto {r}")),
                to: phone.clone(),
                body: "Me detuvo inmigración. Llama a la abogada y al consulado, por favor.\nUbicacion: https://www.openstreetmap.org/?mlat=34.05050&mlon=-118.25510 (+/-20 m) a las 12:00 hora del Pacifico.".into(),
                language: avisa_core::Language::Es,
                rank: r.min(1),
                expires_at: now + 3_600_000,
            })
            .collect();
        Ok(store.seal_alert(&NewAlert {
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
            created_at: now,
            messages,
        })?)
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
async fn end_to_end(
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
struct Fairness {
    /// Press to first message at the gateway, per alert (ms, sorted).
    to_first: Vec<f64>,
    /// Third messages that reached the gateway while an accepted alert was
    /// still waiting for its first.
    violations: usize,
    /// Third messages that reached the gateway before the burst's last
    /// first message, counting alerts not yet pressed or accepted then.
    before_last_first: usize,
    drain_seconds: f64,
}

/// A burst under a gateway cap: time to each alert's first message, and
/// fairness violations (an alert's third message at the gateway while some
/// other accepted alert still waited for its first).
async fn fairness(server: &Server, tokens: &[String], n: usize) -> anyhow::Result<Fairness> {
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

fn db_bytes(dir: &Path) -> u64 {
    ["avisa.db", "avisa.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join("data").join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn pg_fresh(admin: &str) -> anyhow::Result<(String, String)> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .context("cannot reach PostgreSQL")?;
    let name = format!("avisa_bench_{}", uuid::Uuid::new_v4().simple());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    Ok((format!("{base}/{name}"), name))
}

async fn pg_drop(admin: &str, name: &str) {
    use sqlx::{Connection, Executor};
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
}

async fn pg_size(url: &str) -> u64 {
    use sqlx::{Connection, Row};
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
        return 0;
    };
    sqlx::query("SELECT pg_database_size(current_database()) AS n")
        .fetch_one(&mut conn)
        .await
        .ok()
        .and_then(|r| r.try_get::<i64, _>("n").ok())
        .unwrap_or(0) as u64
}

// ---- the runs ------------------------------------------------------------------------------

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    avisa_sms::http::init_tls();
    let mut report = Report {
        json: args.json,
        all: serde_json::Map::new(),
    };
    let pg = match &args.database {
        Some(admin) => Some((admin.clone(), pg_fresh(admin).await?)),
        None => None,
    };
    let database = pg.as_ref().map(|(_, (url, _))| url.clone());
    let result = match args.scenario.as_str() {
        "crash" => crash(&args, database.as_deref(), &mut report).await,
        "faults" => faults(&args, database.as_deref(), &mut report).await,
        "all" | "accept" | "ceilings" | "e2e" | "fairness" | "resources" => {
            load(
                &args,
                database.as_deref(),
                args.database.as_deref(),
                &mut report,
            )
            .await
        }
        other => Err(anyhow::anyhow!("unknown scenario {other:?}")),
    };
    if let Some((admin, (_, name))) = &pg {
        pg_drop(admin, name).await;
    }
    result?;
    if args.json {
        println!("{}", Value::Object(report.all));
    }
    Ok(())
}

async fn load(
    args: &BenchArgs,
    database: Option<&str>,
    admin: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let want = |s: &str| args.scenario == "all" || args.scenario == s;
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config(dir.path(), database, 0, "")?;
    let mut server = Server::start(dir.path(), &config, &base).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = server.memory_kb();
    let cpu_start = server.cpu_seconds();
    let setup = Instant::now();
    let tokens = people(&server, args.people).await?;
    if !args.json {
        println!(
            "avisa bench on {} — {} people with 5 contacts each, registered through the API in {:.1} s; {} cores",
            if database.is_some() {
                "PostgreSQL"
            } else {
                "SQLite (WAL, synchronous=FULL)"
            },
            args.people,
            setup.elapsed().as_secs_f64(),
            cores()
        );
    }
    let mut alerts_sent = 0usize;
    let mut accept_rate = f64::NAN;
    // CPU seconds per accepted alert, the server's (until the burst's
    // messages were at the gateway) and the bench client's together.
    let mut accept_cpu_per_alert = f64::NAN;
    if want("accept") || want("ceilings") || want("resources") {
        let cpu_before = server.cpu_seconds();
        let inside_before = server.metrics().await?;
        let accept_started = Instant::now();
        let client_cpu_before = cpu_seconds("self");
        let (rate, lat) = accept(&server, &tokens, args.alerts, args.clients).await?;
        let client_cpu = cpu_seconds("self") - client_cpu_before;
        alerts_sent += args.alerts;
        accept_rate = rate;
        let cpu = server.cpu_seconds() - cpu_before;
        let inside = server.metrics().await?;
        let (commits, commit_size) = inside.since(&inside_before, "avisa_group_commit_size");
        let (_, commit_time) = inside.since(&inside_before, "avisa_group_commit_seconds");
        let (rounds, round_time) = inside.since(&inside_before, "avisa_dispatch_record_seconds");
        let handed_over = inside.grew(&inside_before, "avisa_outbox_handed_over_total");
        // The burst leaves messages to send: let the dispatcher finish, so the
        // next scenarios start from an empty outbox (and say how long it took).
        let owed = args.people + args.alerts * 6;
        let deadline = Instant::now() + Duration::from_secs(300);
        while read_log(&server.sms_log(), 0).0.len() < owed && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let drained = accept_started.elapsed().as_secs_f64();
        let server_per_alert = (server.cpu_seconds() - cpu_before) / args.alerts as f64;
        let client_per_alert = client_cpu / args.alerts as f64;
        accept_cpu_per_alert = server_per_alert + client_per_alert;
        report.section(
            "accept",
            vec![
                ("alerts", json!(args.alerts), ""),
                ("concurrent clients", json!(args.clients), ""),
                ("accepted alerts/s", json!(rate), "/s"),
                ("accept latency p50", json!(percentile(&lat, 0.5)), "ms"),
                ("accept latency p99", json!(percentile(&lat, 0.99)), "ms"),
                ("accept latency max", json!(percentile(&lat, 1.0)), "ms"),
                ("server CPU during the run", json!(cpu), "s"),
                (
                    "server CPU per alert, until its messages were sent",
                    json!(server_per_alert * 1e6),
                    "µs",
                ),
                (
                    "bench client CPU per alert",
                    json!(client_per_alert * 1e6),
                    "µs",
                ),
                (
                    "every message of the burst at the gateway after",
                    json!(drained),
                    "s",
                ),
                // Inside the server, during the burst (from /metrics).
                ("group commits", json!(commits as u64), ""),
                ("alerts per group commit, mean", json!(commit_size), ""),
                (
                    "a group commit, mean (its wait for the writer too)",
                    json!(commit_time * 1e3),
                    "ms",
                ),
                (
                    "messages handed to the dispatcher at commit",
                    json!(handed_over as u64),
                    "",
                ),
                ("dispatch rounds recorded", json!(rounds as u64), ""),
                (
                    "a round's results and next claim, mean",
                    json!(round_time * 1e3),
                    "ms",
                ),
            ],
        );
    }
    if want("ceilings") {
        let http = http_ceiling(&server, 20_000, args.clients).await?;
        // The store alone on a database of its own (on PostgreSQL, a second
        // fresh database on the same server).
        let own = match admin {
            Some(admin) => Some(pg_fresh(admin).await?),
            None => None,
        };
        let ceilings = store_ceilings(
            own.as_ref().map(|(url, _)| url.as_str()),
            dir.path(),
            2000,
            20_000,
            256,
        )
        .await;
        if let (Some(admin), Some((_, name))) = (admin, &own) {
            pg_drop(admin, name).await;
        }
        let StoreCeilings {
            single,
            batched,
            batched_cpu_per_alert,
        } = ceilings?;
        let lower = http.min(batched);
        // The CPU the machine would need to accept at half the lower
        // ceiling, at this run's CPU per alert (server and client share it).
        let needed = 0.5 * lower * accept_cpu_per_alert;
        report.section(
            "ceilings",
            vec![
                ("HTTP GET /healthz", json!(http), "req/s"),
                (
                    "store: one transaction per alert",
                    json!(single),
                    "alerts/s",
                ),
                (
                    "store: batches of 256 (group commit)",
                    json!(batched),
                    "alerts/s",
                ),
                ("accept ÷ HTTP ceiling", json!(accept_rate / http), ""),
                (
                    "accept ÷ one-commit-per-alert",
                    json!(accept_rate / single),
                    "",
                ),
                (
                    "accept ÷ group-commit ceiling",
                    json!(accept_rate / batched),
                    "",
                ),
                (
                    "accept ÷ lower of HTTP and group commit",
                    json!(accept_rate / lower),
                    "",
                ),
                (
                    "store: CPU per alert in batches (store alone)",
                    json!(batched_cpu_per_alert * 1e6),
                    "µs",
                ),
                (
                    "CPU cores accept needs at ½ the lower ceiling",
                    json!(needed),
                    "cores",
                ),
                ("CPU cores on this machine", json!(cores()), ""),
            ],
        );
    }
    if want("e2e") {
        let (first, last, incomplete, refused) =
            end_to_end(&server, &tokens, args.rate, args.seconds).await?;
        alerts_sent += args.rate * args.seconds as usize;
        report.section(
            "end to end",
            vec![
                ("alerts/s sustained", json!(args.rate), "/s"),
                ("seconds", json!(args.seconds), "s"),
                (
                    "press → first message at gateway p50",
                    json!(percentile(&first, 0.5)),
                    "ms",
                ),
                (
                    "press → first message at gateway p99",
                    json!(percentile(&first, 0.99)),
                    "ms",
                ),
                (
                    "press → last message at gateway p50",
                    json!(percentile(&last, 0.5)),
                    "ms",
                ),
                (
                    "press → last message at gateway p99",
                    json!(percentile(&last, 0.99)),
                    "ms",
                ),
                (
                    "press → last message at gateway max",
                    json!(percentile(&last, 1.0)),
                    "ms",
                ),
                ("alerts not complete after 60 s", json!(incomplete), ""),
                ("presses refused or failed", json!(refused), ""),
            ],
        );
    }
    let (_, peak) = server.memory_kb();
    let cpu_total = server.cpu_seconds() - cpu_start;
    let bytes = match database {
        Some(url) => pg_size(url).await,
        None => db_bytes(dir.path()),
    };
    server.stop();
    if want("fairness") {
        // A server of its own (on PostgreSQL, a database of its own too).
        let dir = tempfile::tempdir()?;
        let fresh = match admin {
            Some(admin) => Some(pg_fresh(admin).await?),
            None => None,
        };
        let (config, base) = Server::write_config(
            dir.path(),
            fresh.as_ref().map(|(u, _)| u.as_str()),
            args.gateway_rate,
            "",
        )?;
        let server = Server::start(dir.path(), &config, &base).await?;
        let people_n = args.people.min(args.burst).max(1);
        let tokens = people(&server, people_n).await?;
        let inside_before = server.metrics().await?;
        let fair = fairness(&server, &tokens, args.burst).await?;
        let gave_way = server
            .metrics()
            .await?
            .grew(&inside_before, "avisa_dispatch_gave_way_total");
        let first = &fair.to_first;
        let mut server = server;
        server.stop();
        if let (Some(admin), Some((_, name))) = (admin, &fresh) {
            pg_drop(admin, name).await;
        }
        report.section(
            "gateway-capped fairness",
            vec![
                ("gateway cap", json!(args.gateway_rate), "msg/s"),
                ("burst", json!(args.burst), "alerts"),
                (
                    "time to each alert's first message p50",
                    json!(percentile(first, 0.5) / 1000.0),
                    "s",
                ),
                (
                    "time to each alert's first message p99",
                    json!(percentile(first, 0.99) / 1000.0),
                    "s",
                ),
                (
                    "fairness violations (an accepted alert waiting)",
                    json!(fair.violations),
                    "",
                ),
                (
                    "third messages before the last first (strict)",
                    json!(fair.before_last_first),
                    "",
                ),
                (
                    "later messages that gave way to a new alert",
                    json!(gave_way as u64),
                    "",
                ),
                (
                    "time to drain every message",
                    json!(fair.drain_seconds),
                    "s",
                ),
            ],
        );
    }
    {
        report.section(
            "resources",
            vec![
                (
                    "server RSS when idle",
                    json!(idle_rss as f64 / 1024.0),
                    "MB",
                ),
                ("server peak RSS", json!(peak as f64 / 1024.0), "MB"),
                (
                    "server CPU seconds per 1,000 alerts",
                    json!(if alerts_sent > 0 {
                        cpu_total * 1000.0 / alerts_sent as f64
                    } else {
                        f64::NAN
                    }),
                    "s",
                ),
                (
                    "database bytes per alert",
                    json!(if alerts_sent > 0 {
                        bytes as f64 / alerts_sent as f64
                    } else {
                        f64::NAN
                    }),
                    "B",
                ),
            ],
        );
    }
    Ok(())
}

/// SIGKILL at random points during a burst; after each restart every accepted
/// alert's messages must reach the gateway.
async fn crash(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (config, base) = Server::write_config(dir.path(), database, 0, "")?;
    // Short leases so restarted servers pick up what a dead one held.
    let text = std::fs::read_to_string(&config)? + "\n[dispatch]\nlease_seconds = 2\n";
    std::fs::write(&config, text)?;
    let mut server = Server::start(dir.path(), &config, &base).await?;
    let tokens = people(&server, args.people.min(100)).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut owed: HashMap<String, ()> = HashMap::new();
    let mut refused = 0usize;
    let per_round = args.alerts / (args.kills + 1);
    for round in 0..=args.kills {
        let next = Arc::new(AtomicUsize::new(0));
        let tokens = Arc::new(tokens.clone());
        let mut set = JoinSet::new();
        for _ in 0..32 {
            let (client, next, tokens, base) =
                (client.clone(), next.clone(), tokens.clone(), base.clone());
            set.spawn(async move {
                let mut accepted = Vec::new();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= per_round {
                        return (accepted, failed);
                    }
                    match press(
                        &client,
                        &base,
                        &tokens[i % tokens.len()],
                        &format!("crash-{round}-{i:08}"),
                    )
                    .await
                    {
                        Ok((_, ids, _)) => accepted.extend(ids),
                        Err(_) => failed += 1,
                    }
                }
            });
        }
        if round < args.kills {
            // Kill at a random moment in the burst.
            let wait = 50 + getrandom::u64().unwrap_or(0) % 400;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            server.kill();
        }
        while let Some(r) = set.join_next().await {
            let (ids, failed) = r?;
            refused += failed;
            for id in ids {
                owed.insert(id, ());
            }
        }
        if round < args.kills {
            server.restart().await?;
        }
    }
    // Every accepted message must reach the gateway; count the copies.
    let deadline = Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let (lines, _) = read_log(&server.sms_log(), 0);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (id, _) in lines {
            if owed.contains_key(&id) {
                *counts.entry(id).or_default() += 1;
            }
        }
        if counts.len() == owed.len() || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    server.stop();
    let lost = owed.len() - counts.len();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    report.section(
        "crash",
        vec![
            ("alerts pressed", json!(per_round * (args.kills + 1)), ""),
            ("SIGKILLs", json!(args.kills), ""),
            (
                "presses that got no 2xx (in flight at a kill)",
                json!(refused),
                "",
            ),
            ("messages owed to accepted alerts", json!(owed.len()), ""),
            ("lost", json!(lost), ""),
            ("duplicates", json!(duplicates), ""),
        ],
    );
    if lost > 0 {
        bail!("{lost} messages of accepted alerts never reached the gateway");
    }
    Ok(())
}

/// A faulty provider (30 % 500s, 10 % timeouts, some 429s) with a second
/// gateway behind it: every message is delivered or visibly failed/expired.
async fn faults(
    args: &BenchArgs,
    database: Option<&str>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let fake = avisa_testkit::FakeTwilio::start().await;
    let dir = tempfile::tempdir()?;
    let extra = format!(
        "gateways = [\"twilio\", \"log\"]\nvalidity_minutes = 2\n[sms.twilio]\nbase_url = \"{}\"\naccount_sid = \"{}\"\nauth_token = \"{}\"\nfrom = \"+15005550006\"\ntimeout_seconds = 1\n",
        fake.base_url, fake.account_sid, fake.auth_token
    );
    let (config, base) = Server::write_config(dir.path(), database, 0, &extra)?;
    let text = std::fs::read_to_string(&config)?
        + "\n[dispatch]\nretry_base_ms = 200\nretry_max_ms = 5000\n";
    std::fs::write(&config, text)?;
    let mut server = Server::start(dir.path(), &config, &base).await?;
    let tokens = people_via(&server, args.people.min(50), Some(&fake)).await?;
    // The provider turns faulty once the people are registered.
    fake.set_chaos(Some(avisa_testkit::Chaos {
        server_error: 0.30,
        timeout: 0.10,
        too_many: 0.05,
        hang: Duration::from_secs(3),
    }));
    let n = args.burst.min(1000);
    let client = reqwest::Client::new();
    let mut alerts = Vec::new();
    for i in 0..n {
        let token = &tokens[i % tokens.len()];
        let (id, _, _) = press(&client, &base, token, &format!("faults-{i:08}")).await?;
        alerts.push((token.clone(), id));
    }
    // Wait until no message is queued any more (validity is 2 minutes).
    let started = Instant::now();
    let mut tally: HashMap<String, usize>;
    loop {
        tally = HashMap::new();
        for (token, id) in &alerts {
            let (_, v) = call(
                &client,
                reqwest::Method::GET,
                &format!("{base}/api/v1/alerts/{id}"),
                Some(token),
                Value::Null,
            )
            .await
            .unwrap_or((0, Value::Null));
            for r in v["recipients"].as_array().into_iter().flatten() {
                *tally
                    .entry(r["status"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
            }
        }
        if tally.get("queued").copied().unwrap_or(0) == 0
            || started.elapsed() > Duration::from_secs(200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let answered: Vec<u16> = fake.received().iter().map(|r| r.answered).collect();
    server.stop();
    let count = |s: &str| json!(tally.get(s).copied().unwrap_or(0));
    let by_log = read_log(&server.sms_log(), 0).0.len();
    report.section(
        "faults",
        vec![
            ("alerts", json!(n), ""),
            (
                "provider answers: 201",
                json!(answered.iter().filter(|a| **a == 201).count()),
                "",
            ),
            (
                "provider answers: 500",
                json!(answered.iter().filter(|a| **a == 500).count()),
                "",
            ),
            (
                "provider answers: 429 + Retry-After",
                json!(answered.iter().filter(|a| **a == 429).count()),
                "",
            ),
            (
                "provider answers: none (timeout)",
                json!(answered.iter().filter(|a| **a == 0).count()),
                "",
            ),
            ("messages through the second gateway", json!(by_log), ""),
            ("messages sent", count("sent"), ""),
            ("messages delivered", count("delivered"), ""),
            ("messages failed (visible)", count("failed"), ""),
            ("messages expired (visible)", count("expired"), ""),
            ("messages still queued", count("queued"), ""),
            (
                "seconds until none queued",
                json!(started.elapsed().as_secs_f64()),
                "s",
            ),
        ],
    );
    Ok(())
}
