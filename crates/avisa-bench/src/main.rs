//! `avisa-bench`: the load benchmark. A program that prints numbers, never a
//! test with timing asserts.
//!
//! It starts `avisa serve` as a child process (so its memory and CPU are its
//! own) on a temporary data directory, with the `log` gateway as the instant
//! local SMS gateway (optionally rate-capped; `sms-log.jsonl` gives the time
//! each message reached it), registers simulated people with five contacts
//! each through the real API, and runs the scenarios. The fault runs add
//! SIGKILLs (`crash`) and a faulty provider (`faults`).
//!
//! It lives apart from `avisa` so the shipped binary carries no test code
//! (the fake provider of `faults`). The server it measures is the same
//! library `avisa serve` runs: the bench starts itself as the child with the
//! hidden `serve` command, which calls [`avisa_server::run`].

mod abuse;
mod faults;
mod instances;
mod load;
mod overload;
mod people;
mod pumping;
mod report;
mod scenarios;
mod server;
mod timers;

/// What every module of the bench shares.
mod prelude {
    pub(crate) use crate::BenchArgs;
    pub(crate) use crate::faults::*;
    pub(crate) use crate::load::*;
    pub(crate) use crate::people::*;
    pub(crate) use crate::report::*;
    pub(crate) use crate::scenarios::*;
    pub(crate) use crate::server::*;
}

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::Value;

use prelude::*;

#[derive(Parser)]
#[command(
    name = "avisa-bench",
    about = "Avisa's load benchmark and fault runs: prints numbers (see BENCHMARKS.md)."
)]
struct Cli {
    #[command(subcommand)]
    serve: Option<Serve>,
    #[command(flatten)]
    args: BenchArgs,
}

#[derive(Subcommand)]
enum Serve {
    /// The server under test (started by the bench itself).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        config: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// all (accept, ceilings, e2e, fairness, resources), or one of those, or
    /// crash, faults, pumping, timers (`--people` × 10 check-in timers
    /// due in one minute) or instances (1 … `--instances` servers on one
    /// PostgreSQL, one killed in a burst) or overload (`--rate` presses/s
    /// for `--seconds`, open loop) or abuse (one phone pumping its
    /// contacts, presses under connection floods, a code flood).
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
    /// e2e and overload: alerts per second offered. e2e without it offers
    /// half the accept rate this run measured (1,000 if accept did not
    /// run); overload without it offers 1,000.
    #[arg(long)]
    pub rate: Option<usize>,
    /// e2e, pumping and overload: seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// fairness and pumping: the gateway's cap, messages per second.
    #[arg(long, default_value_t = 100)]
    pub gateway_rate: u32,
    /// fairness and crash: alerts in the burst.
    #[arg(long, default_value_t = 1000)]
    pub burst: usize,
    /// crash: how many times the server is killed.
    #[arg(long, default_value_t = 3)]
    pub kills: usize,
    /// instances: runs with 1, 2, … up to this many `avisa serve` processes
    /// on one PostgreSQL database (needs --database).
    #[arg(long, default_value_t = 3)]
    pub instances: usize,
    /// instances: presses spread over this many offices (Los Angeles,
    /// Chicago, Houston, New York, Miami, Phoenix: a raid across cities).
    #[arg(long, default_value_t = 1)]
    pub offices: usize,
}

fn main() -> std::process::ExitCode {
    match main_inner() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main_inner() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.serve {
        Some(Serve::Serve { config }) => {
            let config = avisa_server::Config::load(Some(&config))?;
            avisa_server::init_logging(config.log_format);
            runtime.block_on(avisa_server::run(config))
        }
        None => runtime.block_on(run(cli.args)),
    }
}

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
        "abuse" => abuse::abuse(&args, database.as_deref(), &mut report).await,
        "faults" => faults(&args, args.database.as_deref(), &mut report).await,
        "pumping" => pumping::pumping(&args, database.as_deref(), &mut report).await,
        "timers" => timers::timers(&args, database.as_deref(), &mut report).await,
        "instances" => instances::instances(&args, args.database.as_deref(), &mut report).await,
        "overload" => overload::overload(&args, database.as_deref(), &mut report).await,
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
