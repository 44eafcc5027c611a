//! The server under test, run as a child process (this binary's hidden
//! `serve`) with its own config; its SMS log and its /metrics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::prelude::*;

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
}

/// Every budget lifted: the load runs measure the server, not its limits.
const LIFTED: &str = "[limits]\nregistrations_per_hour = 1000000\ncodes_per_address_per_hour = 1000000\n\
    codes_per_country_per_hour = 1000000\ncodes_per_hour = 1000000\n\
    codes_without_challenge_per_minute = 1000000\n\
    connections_per_address = 100000\n\
    person_sms_per_hour = 1000000000\nperson_sms_per_day = 1000000000\n\
    [alerts]\nrate_limit = 1000000000";

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Server {
    pub(crate) fn write_config(
        dir: &Path,
        database: Option<&str>,
        gateway_rate: u32,
        extra: &str,
    ) -> anyhow::Result<(PathBuf, String)> {
        Self::write_config_limits(dir, database, gateway_rate, LIFTED, extra)
    }

    /// As [`Server::write_config`], with `limits` (TOML for `[limits]` and
    /// `[alerts]`, headers included) instead of every budget lifted.
    pub(crate) fn write_config_limits(
        dir: &Path,
        database: Option<&str>,
        gateway_rate: u32,
        limits: &str,
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
                 {limits}\n\
                 [sms]\nlog_echo = false\n{extra}\n[[sms.gateways]]\nkind = \"log\"\nrate_per_second = {gateway_rate}\n",
                dir.join("data").display()
            ),
        )?;
        Ok((config, base))
    }

    pub(crate) async fn start(dir: &Path, config: &Path, base: &str) -> anyhow::Result<Server> {
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--config", config.to_str().context("utf-8 path")?])
            .env("AVISA_LOG", "error")
            .env_remove("AVISA_DATA_KEY")
            .env_remove("AVISA_DATABASE_URL")
            .env("AVISA_DATA_KEY_FILE", dir.join("data.key"))
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
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        *self = Server::start(&self.dir, &self.config, &self.base).await?;
        Ok(())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in kB.
    pub(crate) fn memory_kb(&self) -> (u64, u64) {
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
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.pid().to_string())
    }

    /// The `_sum` and `_count` of the server's unlabelled histograms, and
    /// its unlabelled `_total` counters, on `/metrics`: where a run's time
    /// went inside the server.
    pub(crate) async fn metrics(&self) -> anyhow::Result<Metrics> {
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

    pub(crate) fn sms_log(&self) -> PathBuf {
        self.dir.join("data").join("sms-log.jsonl")
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn stop(&mut self) {
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
pub(crate) fn read_log(path: &Path, from: usize) -> (Vec<(String, f64)>, usize) {
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
pub(crate) struct Metrics(HashMap<String, f64>);

impl Metrics {
    /// Observations of `name` since `before`, and their mean (NaN if none).
    pub(crate) fn since(&self, before: &Metrics, name: &str) -> (f64, f64) {
        let get = |h: &Metrics, suffix: &str| {
            h.0.get(&format!("{name}_{suffix}")).copied().unwrap_or(0.0)
        };
        let count = get(self, "count") - get(before, "count");
        let sum = get(self, "sum") - get(before, "sum");
        (count, if count > 0.0 { sum / count } else { f64::NAN })
    }

    /// How much the counter `name` grew since `before`.
    pub(crate) fn grew(&self, before: &Metrics, name: &str) -> f64 {
        let get = |h: &Metrics| h.0.get(name).copied().unwrap_or(0.0);
        get(self) - get(before)
    }
}
