//! Figures and how they are printed: percentiles, the report (tables or
//! JSON), CPU seconds from /proc, database sizes.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) struct Report {
    pub(crate) json: bool,
    pub(crate) all: serde_json::Map<String, Value>,
}

impl Report {
    pub(crate) fn section(&mut self, name: &str, rows: Vec<(&str, Value, &str)>) {
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

/// The CPU cores this machine gives the bench and the server.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// CPU seconds (user + system) a process used so far: a pid, or "self" for
/// the bench (its client and, in the store ceilings, the store).
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
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

/// The SQLite database's size on disk, WAL included.
pub(crate) fn db_bytes(dir: &Path) -> u64 {
    ["avisa.db", "avisa.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join("data").join(f)).ok())
        .map(|m| m.len())
        .sum()
}

pub(crate) async fn pg_fresh(admin: &str) -> anyhow::Result<(String, String)> {
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

pub(crate) async fn pg_drop(admin: &str, name: &str) {
    use sqlx::{Connection, Executor};
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
}

/// Deadlocks PostgreSQL detected in the database a URL names, since its
/// statistics began (`pg_stat_database.deadlocks`).
pub(crate) async fn pg_deadlocks(url: &str) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    Ok(sqlx::query(
        "SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?
    .try_get::<i64, _>("n")?)
}

pub(crate) async fn pg_size(url: &str) -> u64 {
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
