//! The load run: accept, ceilings, e2e, fairness and resources, in one
//! server's life.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::prelude::*;

pub(crate) async fn load(
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
            "avisa-bench on {} — {} people with 5 contacts each, registered through the API in {:.1} s; {} cores",
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
        // Within capacity unless asked otherwise: half of what this run
        // accepted (a rate the host cannot take measures the host).
        let (rate, chosen) = match (args.rate, accept_rate.is_finite()) {
            (Some(rate), _) => (rate, "--rate"),
            (None, true) => (
                (accept_rate / 2.0).round().max(1.0) as usize,
                "½ of this run's accept",
            ),
            (None, false) => (1000, "default (accept did not run)"),
        };
        let (first, last, incomplete, refused) =
            end_to_end(&server, &tokens, rate, args.seconds).await?;
        alerts_sent += rate * args.seconds as usize;
        // What the server kept up with: every alert's last message at the
        // gateway, over the run and the tail the queue took to drain.
        let span = args.seconds as f64 + percentile(&last, 1.0).max(0.0) / 1000.0;
        let completed = (rate * args.seconds as usize) as f64 / span.max(1e-9);
        let offered = vec![
            ("alerts/s offered", json!(rate), "/s"),
            ("offered rate chosen as", json!(chosen), ""),
            ("seconds", json!(args.seconds), "s"),
            (
                "alerts/s completed (every message at the gateway)",
                json!(completed.round()),
                "/s",
            ),
        ];
        if refused > 0 || incomplete > 0 || completed < 0.9 * rate as f64 {
            // Latencies of a queue that only grows say how long the run
            // was, not what a press costs: they are not printed.
            let mut rows = offered;
            rows.extend([
                (
                    "OVER CAPACITY: presses refused or failed",
                    json!(refused),
                    "",
                ),
                ("alerts not complete after 60 s", json!(incomplete), ""),
            ]);
            report.section("end to end (over capacity: no latencies)", rows);
        } else {
            let mut rows = offered;
            rows.extend([
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
            ]);
            report.section("end to end", rows);
        }
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
