//! The `avisa` binary as a person runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn avisa(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(args)
        .current_dir(cwd)
        .env_remove("AVISA_DATA_KEY")
        .env_remove("AVISA_DATABASE_URL")
        .output()
        .expect("run avisa")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn default_config_prints_the_committed_example() {
    let dir = tempfile::tempdir().expect("dir");
    let out = avisa(dir.path(), &["default-config"]);
    assert!(out.status.success());
    let committed = include_str!("../../../config/avisa.example.toml");
    assert_eq!(stdout(&out), committed);
}

#[test]
fn consulates_nearest_and_list() {
    let dir = tempfile::tempdir().expect("dir");
    let out = avisa(
        dir.path(),
        &["consulates", "nearest", "41.8781", "-87.6298"],
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("goes to: chicago"), "{text}");
    let first_row = text
        .lines()
        .find(|l| l.starts_with("chicago"))
        .expect("a chicago row");
    assert!(first_row.trim_end().ends_with("0.0"), "{first_row}");

    let out = avisa(
        dir.path(),
        &[
            "consulates",
            "nearest",
            "19.4326",
            "-99.1332",
            "--limit",
            "2",
        ],
    );
    assert!(stdout(&out).contains("outside coverage (country: MX)"));

    let out = avisa(dir.path(), &["consulates", "nearest", "200", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("latitude"));

    let out = avisa(dir.path(), &["consulates", "list"]);
    assert!(stdout(&out).contains("53 offices"));
    assert!(
        !dir.path().join("avisa-data").exists(),
        "reading the directory touches no data"
    );
}

#[test]
fn a_bad_config_is_refused_with_reasons() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("avisa.toml");
    std::fs::write(
        &file,
        "public_url = \"ftp://x\"\n[sms]\ngateways = [\"pigeon\"]\n",
    )
    .expect("write");
    let out = avisa(
        dir.path(),
        &["--config", file.to_str().expect("utf-8"), "migrate"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("public_url") && err.contains("pigeon"),
        "{err}"
    );
    std::fs::write(&file, "listen = 8080\n").expect("write");
    let out = avisa(
        dir.path(),
        &["--config", file.to_str().expect("utf-8"), "migrate"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn migrate_creates_the_database_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("dir");
    let out = avisa(dir.path(), &["--data-dir", "elsewhere", "migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("elsewhere/avisa.db").exists());
}

/// `avisa serve` with no configuration: creates ./avisa-data, serves
/// /healthz, and a registration writes its code to ./avisa-data/sms-log.jsonl.
#[tokio::test]
async fn serve_on_embedded_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(["serve", "--listen", &listen])
        .current_dir(dir.path())
        .env_remove("AVISA_DATA_KEY")
        .env_remove("AVISA_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start avisa serve");
    avisa_sms::http::init_tls();
    let client = reqwest::Client::new();
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = client
        .post(format!("{base}/api/v1/devices"))
        .json(&serde_json::json!({"phone": "(213) 555-0100"}))
        .send()
        .await
        .expect("register");
    assert_eq!(resp.status().as_u16(), 201);
    // The code goes through the outbox: wait for the dispatcher to log it.
    let log_file = dir.path().join("avisa-data/sms-log.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        if let Ok(text) = std::fs::read_to_string(&log_file)
            && !text.is_empty()
        {
            break text;
        }
        assert!(Instant::now() < deadline, "no SMS was logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a line")).expect("json");
    assert_eq!(line["to"], "+12135550100");
    assert!(dir.path().join("avisa-data/avisa.db").exists());
    assert!(dir.path().join("avisa-data/data.key").exists());

    // SIGTERM: a graceful stop with a clean exit.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
