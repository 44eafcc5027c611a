//! The `avisa` binary as a person runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "cli/contract.rs"]
mod contract;
#[path = "cli/instances.rs"]
mod instances;

fn avisa(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd.join("config"))
        .env_remove("AVISA_DATA_KEY")
        .env_remove("AVISA_DATABASE_URL")
        .output()
        .expect("run avisa")
}

/// Runs `avisa args` in `cwd` and fails the test, with its standard error,
/// unless it succeeded.
fn avisa_ok(cwd: &Path, args: &[&str]) -> Output {
    let out = avisa(cwd, args);
    assert!(
        out.status.success(),
        "avisa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

/// Every file or folder ARCHITECTURE.md names (a `…/…` in backticks that
/// starts at the workspace's top, or at a crate's name) exists: a newcomer
/// finds where a change goes from it alone.
#[test]
fn architecture_names_only_paths_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let tops = ["crates/", "web/", "packaging/", ".ci/", "docs/"];
    let mut missing = Vec::new();
    let mut checked = 0;
    for (i, quoted) in text.split('`').enumerate() {
        // The odd pieces are what the backticks quote.
        if i % 2 == 0 || quoted.contains(' ') || !quoted.contains('/') {
            continue;
        }
        let path = if tops.iter().any(|t| quoted.starts_with(t)) {
            quoted.to_string()
        } else if quoted.starts_with("avisa") && quoted.contains("/src/") {
            format!("crates/{quoted}")
        } else {
            continue;
        };
        // A pattern (`NNNN_*.sql`, `<name>.rs`) is a recipe, not a path;
        // `{a,b}.rs` names each.
        if path.contains(['*', '<']) {
            continue;
        }
        let paths = match (path.find('{'), path.find('}')) {
            (Some(open), Some(close)) => path[open + 1..close]
                .split(',')
                .map(|one| format!("{}{one}{}", &path[..open], &path[close + 1..]))
                .collect(),
            _ => vec![path],
        };
        for path in paths {
            checked += 1;
            if !root.join(&path).exists() {
                missing.push(path);
            }
        }
    }
    assert!(checked > 50, "only {checked} paths found");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what is not there: {missing:?}"
    );
}

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The domain speaks no HTTP: what the voice line, the SMS keyword and the
/// check-in job tell a person is decided from domain errors, so no module
/// outside the HTTP layer names `ApiError` or imports the server's
/// `crate::error` (issue 36). The engine crate has no HTTP at all.
#[test]
fn the_domain_speaks_no_http() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let server = root.join("crates/avisa-server/src");
    let mut files: Vec<std::path::PathBuf> = ["pin.rs", "checkins.rs", "live.rs", "duress.rs"]
        .iter()
        .map(|f| server.join(f))
        .collect();
    files.extend(rust_files(&root.join("crates/avisa-engine/src")));
    assert!(files.len() > 15, "only {} files found", files.len());
    let speaking: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("a source file");
            text.contains("ApiError") || text.contains("crate::error")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        speaking.is_empty(),
        "domain code speaking HTTP: {speaking:?}"
    );
}

/// The server holds no engine: raising an alert, the writer, the
/// dispatcher and the periodic jobs that move alerts are `avisa-engine`'s
/// (issue 36). What only they call of the store must not be called from
/// the server's sources; `raise_once` and the job bodies must not be there.
#[test]
fn the_server_holds_no_engine_code() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../avisa-server/src");
    const ENGINE_ONLY: [&str; 14] = [
        "fn raise_once",
        ".cancel_alert(",
        ".duress_cancel(",
        ".insert_alerts_numbered(",
        ".escalate_due(",
        ".due_checkins(",
        ".take_reminders(",
        ".purge_budgets_and_unverified(",
        ".purge_login_failures(",
        ".reclaim_expired_leases(",
        ".apply_retention(",
        ".mark_unconfirmed(",
        ".expire_due(",
        ".release_copies_taken_twice(",
    ];
    let files = rust_files(&src);
    let mut found = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("a source file");
        for name in ENGINE_ONLY.iter().filter(|n| text.contains(**n)) {
            found.push(format!("{} names {name}", path.display()));
        }
    }
    assert!(files.len() > 30, "only {} files found", files.len());
    assert!(found.is_empty(), "engine code in the server: {found:?}");
}

/// No two of the server's top-level modules depend on each other, directly
/// or in a circle (issue 36): the HTTP modules stand on the domain modules,
/// which stand on the state, never the other way. A module's dependencies
/// are the `crate::<module>` its code names (comments and tests aside).
#[test]
fn the_servers_modules_import_no_circle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../avisa-server/src");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).expect("inside src");
            let first = relative.iter().next().expect("a name").to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let named = deps.entry(module.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    let names: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group
                            .split('}')
                            .next()
                            .unwrap_or("")
                            .split(',')
                            .map(|p| p.trim().split("::").next().unwrap_or(""))
                            .collect(),
                        None => vec![
                            rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                                .next()
                                .unwrap_or(""),
                        ],
                    };
                    for name in names.into_iter().filter(|n| !n.is_empty() && *n != module) {
                        named.insert(name.to_string());
                    }
                }
            }
        }
    }
    let modules: BTreeSet<String> = deps.keys().cloned().collect();
    assert!(modules.len() > 20, "only {} modules found", modules.len());
    // A depth-first walk from each module: reaching it again is a circle.
    for start in &modules {
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in deps[&at].iter().filter(|n| modules.contains(*n)) {
                assert!(
                    next != start,
                    "the server's modules import in a circle: {} -> {next}",
                    path.join(" -> ")
                );
                if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
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
        "public_url = \"ftp://x\"\n[[sms.gateways]]\nkind = \"twilio\"\n",
    )
    .expect("write");
    let out = avisa(
        dir.path(),
        &["--config", file.to_str().expect("utf-8"), "migrate"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("public_url") && err.contains("account_sid"),
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

/// The completion scripts and the manual page the package installs come
/// from the binary itself, so they name every command it has.
#[test]
fn completions_and_the_manual_name_every_command() {
    let dir = tempfile::tempdir().expect("dir");
    let man = stdout(&avisa_ok(dir.path(), &["man"]));
    assert!(man.contains(".TH avisa 1"), "{man}");
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&avisa_ok(dir.path(), &["completions", shell]));
        for command in ["serve", "backup", "restore", "ready", "staff", "key"] {
            assert!(script.contains(command), "{shell} lacks {command}");
            assert!(man.contains(command), "the manual lacks {command}");
        }
    }
    assert!(
        !avisa(dir.path(), &["completions", "cmd.exe"])
            .status
            .success()
    );
}

/// `avisa backup` and `avisa restore` as an operator types them: the copy
/// is made beside a database in use, put into an empty data directory, and
/// opens there with the same key; a second restore is refused. (Under
/// load, and what the copy holds: `backup.rs` in the server's tests.)
#[test]
fn a_backup_is_restored_into_an_empty_data_directory() {
    let dir = tempfile::tempdir().expect("dir");
    // The first use binds a key (apart, in $XDG_CONFIG_HOME/avisa/data.key).
    avisa_ok(dir.path(), &["--data-dir", "d", "staff", "list"]);
    let out = avisa_ok(
        dir.path(),
        &["--data-dir", "d", "backup", "--to", "copy.db"],
    );
    assert!(stdout(&out).contains("backed up"), "{}", stdout(&out));
    avisa_ok(
        dir.path(),
        &["--data-dir", "restored", "restore", "--from", "copy.db"],
    );
    assert!(dir.path().join("restored/avisa.db").exists());
    let out = avisa_ok(dir.path(), &["--data-dir", "restored", "key", "check"]);
    assert!(
        stdout(&out).contains("this key opens the database"),
        "{}",
        stdout(&out)
    );
    let out = avisa(
        dir.path(),
        &["--data-dir", "restored", "restore", "--from", "copy.db"],
    );
    assert!(!out.status.success(), "a second restore over the first");
}

/// `avisa key check`: the key beside a database opens it; another key is
/// refused, with exit 1; a database with no key yet says so.
#[test]
fn the_key_is_checked_against_the_database() {
    let dir = tempfile::tempdir().expect("dir");
    let out = avisa(dir.path(), &["--data-dir", "d", "migrate"]);
    assert!(out.status.success());
    let out = avisa(dir.path(), &["--data-dir", "d", "key", "check"]);
    assert!(!out.status.success(), "no key anywhere yet");
    // The first use binds a key (written apart from the data, in
    // $XDG_CONFIG_HOME/avisa/data.key).
    let out = avisa(dir.path(), &["--data-dir", "d", "staff", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = avisa(dir.path(), &["--data-dir", "d", "key", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("this key opens the database"),
        "{}",
        stdout(&out)
    );
    // Another key (a backup restored with the wrong one).
    let other = Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(["--data-dir", "d", "key", "check"])
        .current_dir(dir.path())
        .env(
            "AVISA_DATA_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .env_remove("AVISA_DATABASE_URL")
        .output()
        .expect("run avisa");
    assert_eq!(other.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("does NOT open the database"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

/// `avisa key rotate`, killed with SIGKILL after writing the new key and
/// after changing the database: the next use rolls the first back and
/// completes the second, and the data opens throughout; an uninterrupted
/// rotation leaves a key the old one cannot stand in for.
#[test]
fn a_rotation_killed_half_way_recovers() {
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("config/avisa/data.key");
    let pending = dir.path().join("config/avisa/data.key.new");
    let out = avisa_stdin(
        dir.path(),
        &[
            "--data-dir",
            "d",
            "staff",
            "add",
            "--username",
            "la.super",
            "--consulate",
            "los-angeles",
            "--role",
            "supervisor",
        ],
        "a long enough password for this test\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = |what: &str| {
        let out = avisa(dir.path(), &["--data-dir", "d", "staff", "list"]);
        assert!(
            out.status.success() && stdout(&out).contains("la.super"),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let killed_at = |step: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_avisa"))
            .args(["--data-dir", "d", "key", "rotate", "--pause-after", step])
            .current_dir(dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env_remove("AVISA_DATA_KEY")
            .env_remove("AVISA_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run avisa key rotate");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("read");
        assert!(line.starts_with("paused"), "{line}");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    };
    let original = std::fs::read_to_string(&key_file).expect("key");

    // Killed before the database changed: rolled back, the old key stays.
    killed_at("written");
    assert!(pending.exists());
    listed("after a kill before the commit");
    assert!(!pending.exists(), "the new key, never used, removed");
    assert_eq!(std::fs::read_to_string(&key_file).expect("key"), original);

    // Killed after: completed, the new key in place.
    killed_at("committed");
    let check = avisa(dir.path(), &["--data-dir", "d", "key", "check"]);
    assert!(check.status.success(), "check finds the rotation's key");
    listed("after a kill after the commit");
    assert!(!pending.exists());
    let rotated = std::fs::read_to_string(&key_file).expect("key");
    assert_ne!(rotated, original, "the new key took the old one's place");

    // The old key opens nothing any more.
    let old = Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(["--data-dir", "d", "key", "check"])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("elsewhere"))
        .env("AVISA_DATA_KEY", original.trim())
        .env_remove("AVISA_DATABASE_URL")
        .output()
        .expect("run avisa");
    assert_eq!(old.status.code(), Some(1));

    // And a whole rotation says so.
    let out = avisa(dir.path(), &["--data-dir", "d", "key", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("the old key opens nothing"),
        "{}",
        stdout(&out)
    );
    listed("after a whole rotation");
}

/// Starts `avisa serve` on embedded defaults in `dir`, on a free port, and
/// waits for `/healthz`: the child and its base URL.
async fn serve_in(dir: &Path) -> (std::process::Child, String) {
    serve_with(dir, None).await
}

/// As [`serve_in`], with a configuration file made from `config` (its
/// `{base}` replaced by the server's own URL).
async fn serve_with(dir: &Path, config: Option<&str>) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_avisa"));
    if let Some(text) = config {
        let file = dir.join("avisa.toml");
        std::fs::write(&file, text.replace("{base}", &format!("http://{listen}")))
            .expect("write the configuration");
        command.arg("--config").arg(&file);
    }
    let child = command
        .args(["serve", "--listen", &listen])
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
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
    (child, base)
}

/// `avisa serve` with no configuration: creates ./avisa-data, serves
/// /healthz, and a registration writes its code to ./avisa-data/sms-log.jsonl.
#[tokio::test]
async fn serve_on_embedded_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    let (child, base) = serve_in(dir.path()).await;
    // Killed if an assertion fails before the graceful stop below.
    let mut child = KillOnDrop(child);
    let client = reqwest::Client::new();
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
    // The key apart from the data: a copy of avisa-data/ carries no key.
    assert!(dir.path().join("config/avisa/data.key").exists());
    assert!(!dir.path().join("avisa-data/data.key").exists());

    // The container's health check: ready while it serves (readiness waits
    // for the first heartbeat), not once it has stopped.
    let ready = || avisa(dir.path(), &["ready", "--url", &format!("{base}/readyz")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready().status.success() {
        assert!(Instant::now() < deadline, "never ready: {:?}", ready());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stdout(&ready()).contains("ready"));

    // SIGTERM: a graceful stop with a clean exit.
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = ready();
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no answer"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

/// The crash test: `avisa serve` is killed with SIGKILL while a burst of
/// alerts is being dispatched, restarted on the same data, and every message
/// of every alert that got a 2xx reaches the gateway; duplicates are counted
/// and bounded by what was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_accepted_alert() {
    use avisa_testkit::{FakeTwilio, Reply};
    use std::collections::HashMap;

    avisa_sms::http::init_tls();
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("avisa.toml");
    let batch = 8;
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
public_url = "{base}"
[[sms.gateways]]
kind = "twilio"
base_url = "{twilio}"
account_sid = "{sid}"
auth_token = "{token}"
from = "+15005550006"
[alerts]
rate_limit = 1000
[limits]
# 200 presses at once, all from 127.0.0.1, by people registered at once.
connections_per_address = 1000
codes_without_challenge_per_minute = 100000
[dispatch]
batch = {batch}
lease = "2s"
retry_base = "50ms"
retry_max = "500ms"
poll = "50ms"
"#,
            data = dir.path().join("data").display(),
            twilio = fake.base_url,
            sid = fake.account_sid,
            token = fake.auth_token,
        ),
    )
    .expect("config");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_avisa"))
            .args(["--config", config.to_str().expect("utf-8"), "serve"])
            .env(
                "XDG_CONFIG_HOME",
                config.parent().expect("dir").join("config"),
            )
            .env_remove("AVISA_DATA_KEY")
            .env_remove("AVISA_DATABASE_URL")
            .env("AVISA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start avisa serve")
    };
    let client = reqwest::Client::new();
    let wait_up = || async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let mut child = KillOnDrop(start());
    wait_up().await;

    // Ten people, two contacts each, onboarded with codes sent through the fake.
    let mut tokens = Vec::new();
    for p in 0..10 {
        let phone = format!("+1213555{:04}", 100 + p);
        let r: serde_json::Value = client
            .post(format!("{base}/api/v1/devices"))
            .json(&serde_json::json!({"phone": phone}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        let token = r["token"].as_str().expect("token").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(m) = fake.accepted().into_iter().find(|m| m.to == phone) {
                break m
                    .body
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)
                    .expect("code")
                    .to_string();
            }
            assert!(Instant::now() < deadline, "no code");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let auth = format!("Bearer {token}");
        let ok = |r: reqwest::Response| assert!(r.status().is_success(), "{}", r.status());
        ok(client
            .post(format!("{base}/api/v1/devices/verify"))
            .header("authorization", &auth)
            .json(&serde_json::json!({"code": code}))
            .send()
            .await
            .expect("verify"));
        let profile: serde_json::Value = client
            .put(format!("{base}/api/v1/profile"))
            .header("authorization", &auth)
            .json(&serde_json::json!({"name": format!("Persona {p}"), "home_state": "TX", "cancel_pin": "4821", "keyword": "auxilio"}))
            .send()
            .await
            .expect("profile")
            .json()
            .await
            .expect("json");
        // Setting the PIN gave this device an unlock: contacts need it.
        let unlock = profile["unlock"].as_str().expect("unlock").to_string();
        for c in 0..2 {
            ok(client
                .post(format!("{base}/api/v1/contacts"))
                .header("authorization", &auth)
                .header("x-avisa-unlock", &unlock)
                .json(&serde_json::json!({"name": "c", "phone": format!("+1713555{:04}", p * 10 + c), "message": "ayuda"}))
                .send()
                .await
                .expect("contact"));
        }
        tokens.push(auth);
    }

    // The burst: a slow gateway keeps messages in flight.
    fake.set_default(Reply::Slow(Duration::from_millis(15)));
    let before = fake.accepted().len();
    let mut presses = tokio::task::JoinSet::new();
    for round in 0..20 {
        for auth in &tokens {
            let (client, auth, base) = (client.clone(), auth.clone(), base.clone());
            presses.spawn(async move {
                let r = client
                    .post(format!("{base}/api/v1/alerts"))
                    .header("authorization", auth.clone())
                    .json(&serde_json::json!({"idempotency_key": format!("crash-{round}-{}", uuid_like(round))}))
                    .send()
                    .await
                    .map_err(|e| format!("{e}"))?;
                if !r.status().is_success() {
                    return Err(format!("{} {}", r.status(), r.text().await.unwrap_or_default()));
                }
                Ok((auth, r.json::<serde_json::Value>().await.map_err(|e| format!("{e}"))?))
            });
        }
    }
    // A contact's twenty SMS are alike (same number, same text): which
    // message of ours a copy at the provider is cannot be told after a
    // crash, nor does it matter to the family, so they are counted per
    // number. The consulate's each carry their own case: counted each.
    let mut expected: Vec<String> = Vec::new();
    let mut per_number: HashMap<String, usize> = HashMap::new();
    let mut alerts: Vec<(String, String)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    while let Some(done) = presses.join_next().await {
        match done.expect("join") {
            Ok((auth, alert)) => {
                alerts.push((
                    auth.clone(),
                    alert["alert_id"].as_str().expect("id").to_string(),
                ));
                // The contacts are listed in their order.
                let p = tokens.iter().position(|t| *t == auth).expect("person");
                let mut c = 0;
                for r in alert["recipients"].as_array().expect("recipients") {
                    if r["kind"] == "contact" {
                        *per_number
                            .entry(format!("+1713555{:04}", p * 10 + c))
                            .or_default() += 1;
                        c += 1;
                    } else {
                        expected.push(r["id"].as_str().expect("id").to_string());
                    }
                }
            }
            Err(e) => refused.push(e),
        }
    }
    // Counts what reached the gateway since the burst: (missing, duplicates).
    let tally = |accepted: Vec<avisa_testkit::Received>| {
        let mut by_ref: HashMap<String, usize> = HashMap::new();
        let mut by_number: HashMap<String, usize> = HashMap::new();
        for m in accepted.into_iter().skip(before) {
            if per_number.contains_key(&m.to) {
                *by_number.entry(m.to).or_default() += 1;
            } else if let Some(r) = m.reference {
                *by_ref.entry(r).or_default() += 1;
            }
        }
        let mut missing = 0;
        let mut duplicates = 0;
        for id in &expected {
            match by_ref.get(id) {
                None => missing += 1,
                Some(n) => duplicates += n - 1,
            }
        }
        for (number, want) in &per_number {
            let got = by_number.get(number).copied().unwrap_or(0);
            missing += want.saturating_sub(got);
            duplicates += got.saturating_sub(*want);
        }
        (missing, duplicates)
    };
    let total = expected.len() + per_number.values().sum::<usize>();
    assert_eq!(
        total,
        200 * 3,
        "every press was accepted; refused: {refused:?}"
    );
    assert_eq!(per_number.len(), 20, "twenty contacts");

    // Kill it mid-dispatch.
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.accepted().len() < before + 120 {
        assert!(Instant::now() < deadline, "dispatch did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reap");
    let at_kill = fake.accepted().len() - before;
    assert!(
        at_kill < total,
        "the kill came before the end of the dispatch ({at_kill})"
    );

    let mut child = KillOnDrop(start());
    wait_up().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (missing, _) = tally(fake.accepted());
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} accepted messages never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Messages that were in flight at the kill come back when their lease
    // runs out and are sent again: wait until the server has recorded every
    // message as sent, then count.
    for (auth, id) in &alerts {
        loop {
            let alert: serde_json::Value = client
                .get(format!("{base}/api/v1/alerts/{id}"))
                .header("authorization", auth)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            let all_sent = alert["recipients"]
                .as_array()
                .is_some_and(|r| r.iter().all(|x| x["status"] == "sent"));
            if all_sent {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "alert {id} never finished: {alert}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (missing, duplicates) = tally(fake.accepted());
    assert_eq!(
        missing, 0,
        "a message recorded as sent never reached the gateway"
    );
    eprintln!(
        "crash test: {total} messages, {at_kill} at the gateway when killed, lost 0, duplicates {duplicates}"
    );
    assert!(
        duplicates <= batch,
        "duplicates ({duplicates}) exceed one in-flight batch ({batch})"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();
}

/// A server that is killed when the test ends, also when it fails: a
/// panicking test left its server running (and burning CPU under every
/// later measurement on the host).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A short distinct suffix without a random-number dependency.
fn uuid_like(n: usize) -> String {
    format!("{:x}{:x}", n * 7919 + 13, std::process::id())
}

#[test]
fn demo_runs_one_alert_end_to_end() {
    let dir = tempfile::tempdir().expect("dir");
    let out = avisa(dir.path(), &["demo"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("routed to: Consulado General de México en Los Ángeles"),
        "{text}"
    );
    assert!(text.contains("Mamá, me detuvo inmigración."));
    assert!(
        text.contains("Location: https://www.openstreetmap.org/?mlat=34.05050&mlon=-118.25510")
    );
    let final_section = text.split("5. Final status").nth(1).expect("statuses");
    assert_eq!(final_section.matches(" sent").count(), 4, "{final_section}");
    assert!(
        !dir.path().join("avisa-data").exists(),
        "the demo keeps nothing in the working directory"
    );
}

/// The browser tests (`web/tests`, Node's test runner driving Debian's
/// Chromium through playwright-core) against this build of `avisa`.
/// Skipped with a message where Chromium or the npm packages are missing,
/// except under `CI=true` (`.ci/run` installs them), where that fails.
#[test]
fn browser_tests() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/tests");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (!tests.join("node_modules/playwright-core").exists())
            .then_some("npm packages (cd web/tests && npm ci)"),
        (!Path::new(&chromium).exists()).then_some("Chromium (apt-get install chromium)"),
        Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("Node.js"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "browser tests cannot run under CI=true: missing {missing:?}"
        );
        eprintln!("skipping the browser tests: missing {missing:?}");
        return;
    }
    let out = Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-reporter=spec",
            "./",
        ])
        .current_dir(&tests)
        .env("AVISA_BIN", env!("CARGO_BIN_EXE_avisa"))
        .output()
        .expect("run node --test");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `avisa` with `input` on standard input.
fn avisa_stdin(cwd: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd.join("config"))
        .env_remove("AVISA_DATA_KEY")
        .env_remove("AVISA_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run avisa");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

#[test]
fn staff_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    let add = |user: &str, consulate: &str, role: &str, password: &str| {
        avisa_stdin(
            dir.path(),
            &[
                "staff",
                "add",
                "--username",
                user,
                "--consulate",
                consulate,
                "--role",
                role,
            ],
            &format!("{password}\n"),
        )
    };
    let out = add(
        "ana.lopez",
        "los-angeles",
        "supervisor",
        "correct horse battery",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("added ana.lopez (supervisor at los-angeles)"));
    let refusals = [
        (
            add(
                "ana.lopez",
                "los-angeles",
                "operator",
                "correct horse battery",
            ),
            "already exists",
        ),
        (
            add("bob", "los-angeles", "operator", "short"),
            "at least 12",
        ),
        (
            add("bob", "los-angeles", "operator", "aaaaaaaaaaaa"),
            "too few different characters",
        ),
        (
            add(
                "roberto.diaz",
                "los-angeles",
                "operator",
                "Roberto.Diaz2026",
            ),
            "built from the username",
        ),
        (
            add("bob", "los-angeles", "operator", "Password2026!!"),
            "common word",
        ),
        (
            add("bob", "atlantis", "operator", "correct horse battery"),
            "not an office",
        ),
        (
            add("bob", "ciam", "king", "correct horse battery"),
            "role must be",
        ),
    ];
    for (out, why) in refusals {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.contains(why), "{err}");
    }
    assert!(
        add("duty", "ciam", "operator", "another long password")
            .status
            .success()
    );
    let list = stdout(&avisa(dir.path(), &["staff", "list"]));
    assert!(
        list.contains("ana.lopez") && list.contains("duty") && list.contains("ciam"),
        "{list}"
    );
    assert!(!list.contains("bob"));
    assert!(
        avisa(dir.path(), &["staff", "disable", "duty"])
            .status
            .success()
    );
    assert!(
        stdout(&avisa(dir.path(), &["staff", "list"]))
            .lines()
            .any(|l| l.starts_with("duty") && l.ends_with("disabled"))
    );
    let reset = avisa_stdin(
        dir.path(),
        &["staff", "reset-password", "ana.lopez"],
        "a brand new password\n",
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(
        !avisa(dir.path(), &["staff", "disable", "nobody"])
            .status
            .success()
    );
}
