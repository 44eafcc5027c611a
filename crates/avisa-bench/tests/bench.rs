//! `avisa-bench` as a person runs it: small runs whose reports must add up
//! (no timing is asserted).

use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `avisa-bench … --json` in a fresh directory and returns its report.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_avisa-bench"))
        .args(args)
        .arg("--json")
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env_remove("AVISA_DATA_KEY")
        .env_remove("AVISA_DATABASE_URL")
        .output()
        .expect("run avisa-bench");
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    report
}

/// The bench's crash run, small: the server is killed twice during a burst
/// and restarted; every message of every accepted alert reaches the gateway.
#[test]
fn the_bench_crash_run_loses_nothing() {
    let report = bench_json(&[
        "--scenario",
        "crash",
        "--people",
        "10",
        "--alerts",
        "600",
        "--kills",
        "2",
    ]);
    let crash = &report["crash"];
    assert_eq!(crash["lost"], 0, "{report}");
    assert!(
        crash["messages owed to accepted alerts"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{report}"
    );
    assert_eq!(crash["SIGKILLs"], 2);
}

/// The bench's accept and ceilings, small: the ratios divide the accept rate
/// by the ceilings of the same run, and the CPU budget beside them is what
/// accepting at half the lower ceiling would take at this run's CPU per
/// alert.
#[test]
fn the_bench_sets_accept_against_its_ceilings_and_its_cpu_budget() {
    let report = bench_json(&[
        "--scenario",
        "ceilings",
        "--people",
        "5",
        "--alerts",
        "300",
        "--clients",
        "16",
    ]);
    let figure = |section: &str, name: &str| {
        report[section][name]
            .as_f64()
            .unwrap_or_else(|| panic!("{section} / {name} missing: {report}"))
    };
    let accept = figure("accept", "accepted alerts/s");
    let server_cpu = figure(
        "accept",
        "server CPU per alert, until its messages were sent",
    );
    let client_cpu = figure("accept", "bench client CPU per alert");
    assert!(
        accept > 0.0 && server_cpu > 0.0 && client_cpu >= 0.0,
        "{report}"
    );
    let http = figure("ceilings", "HTTP GET /healthz");
    let batched = figure("ceilings", "store: batches of 256 (group commit)");
    let lower = http.min(batched);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    assert!(
        close(
            figure("ceilings", "accept ÷ lower of HTTP and group commit"),
            accept / lower
        ),
        "{report}"
    );
    assert!(figure("ceilings", "store: CPU per alert in batches (store alone)") > 0.0);
    // µs per alert, so the cores needed are rate × seconds per alert.
    assert!(
        close(
            figure("ceilings", "CPU cores accept needs at ½ the lower ceiling"),
            0.5 * lower * (server_cpu + client_cpu) / 1e6
        ),
        "{report}"
    );
    assert_eq!(
        figure("ceilings", "CPU cores on this machine") as usize,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
