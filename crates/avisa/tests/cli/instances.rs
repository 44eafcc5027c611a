//! Several `avisa serve` processes on one PostgreSQL database: a killed
//! instance's messages are sent by another within seconds (asking the
//! gateway first, so none twice), and a gateway's rate holds for the whole
//! deployment, not per process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use avisa_testkit::{FakeTwilio, Reply};
use serde_json::{Value, json};

/// One instance: its process and base URL.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Writes a configuration for one instance on `db`, sending through `fake`
/// at `rate` SMS/s, and starts it.
async fn start(
    dir: &Path,
    name: &str,
    db: &str,
    key: &str,
    fake: &FakeTwilio,
    rate: u32,
) -> Instance {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config: PathBuf = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
public_url = "{base}"
database_url = "{db}"
[[sms.gateways]]
kind = "twilio"
base_url = "{twilio}"
account_sid = "{sid}"
auth_token = "{token}"
from = "+15005550006"
rate_per_second = {rate}
[alerts]
rate_limit = 1000
[limits]
connections_per_address = 1000
registrations_per_hour = 1000
codes_per_address_per_hour = 1000
codes_without_challenge_per_minute = 100000
[dispatch]
takeover = "2s"
poll = "50ms"
retry_base = "50ms"
retry_max = "500ms"
"#,
            data = dir.join(name).display(),
            twilio = fake.base_url,
            sid = fake.account_sid,
            token = fake.auth_token,
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_avisa"))
        .args(["--config", config.to_str().expect("utf-8"), "serve"])
        .env("AVISA_DATA_KEY", key)
        .env_remove("AVISA_DATABASE_URL")
        .env("AVISA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start avisa serve");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "{name} did not come up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Instance { child, base }
}

/// A person with `contacts` contacts, onboarded on `at` (codes through
/// the fake); their bearer header.
async fn person(at: &Instance, fake: &FakeTwilio, phone: &str, contacts: usize) -> String {
    let client = reqwest::Client::new();
    let base = &at.base;
    let r: Value = client
        .post(format!("{base}/api/v1/devices"))
        .json(&json!({"phone": phone}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let auth = format!("Bearer {}", r["token"].as_str().expect("token"));
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
    let r = client
        .post(format!("{base}/api/v1/devices/verify"))
        .header("authorization", &auth)
        .json(&json!({"code": code}))
        .send()
        .await
        .expect("verify");
    assert!(r.status().is_success());
    let profile: Value = client
        .put(format!("{base}/api/v1/profile"))
        .header("authorization", &auth)
        .json(&json!({"name": "Persona", "home_state": "CA", "cancel_pin": "4821", "keyword": "auxilio"}))
        .send()
        .await
        .expect("profile")
        .json()
        .await
        .expect("json");
    let unlock = profile["unlock"].as_str().expect("unlock").to_string();
    for c in 0..contacts {
        let r = client
            .post(format!("{base}/api/v1/contacts"))
            .header("authorization", &auth)
            .header("x-avisa-unlock", &unlock)
            .json(&json!({"name": "c", "phone": format!("+1713555{c:04}"), "message": "ayuda"}))
            .send()
            .await
            .expect("contact");
        assert!(r.status().is_success());
    }
    auth
}

/// The recipients' message ids of a press on `at`.
async fn press(at: &Instance, auth: &str, key: &str) -> Vec<String> {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts", at.base))
        .header("authorization", auth)
        .json(&json!({"idempotency_key": key}))
        .send()
        .await
        .expect("press");
    assert!(r.status().is_success(), "{}", r.status());
    let alert: Value = r.json().await.expect("json");
    alert["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

/// The tests of this module run one at a time: each starts several
/// servers, and a gateway's rate measured to the second must not share
/// the two cores with sixteen pressers and a database being stopped.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn key() -> String {
    avisa_core::crypto::DataKey::generate()
        .expect("key")
        .to_base64()
        .to_string()
}

/// A: a press whose messages hang at the gateway; B started beside it;
/// A killed with SIGKILL. B sends every one of A's messages within 5 s of
/// the kill, each once (it asks the gateway first: A's were never taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_messages_are_sent_by_another_within_seconds() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(db) = avisa_store::testing::fresh_postgres_url().await else {
        return;
    };
    avisa_sms::http::init_tls();
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let key = key();
    let a = start(dir.path(), "a", &db, &key, &fake, 0).await;
    let auth = person(&a, &fake, "+12135550100", 2).await;

    // The gateway holds every request: A's sends hang, held by A.
    fake.set_default(Reply::Hang(Duration::from_secs(3600)));
    let ids = press(&a, &auth, "takeover-1").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake
        .received()
        .iter()
        .filter(|m| m.reference.as_ref().is_some_and(|r| ids.contains(r)))
        .count()
        < ids.len()
    {
        assert!(Instant::now() < deadline, "A did not send");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = start(dir.path(), "b", &db, &key, &fake, 0).await;
    // B beats long enough to be trusted to take others' messages.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    fake.set_default(Reply::Created);

    let mut a = a;
    a.child.kill().expect("SIGKILL");
    a.child.wait().expect("reap");
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(5);
    loop {
        let accepted: Vec<String> = fake
            .accepted()
            .into_iter()
            .filter_map(|m| m.reference)
            .filter(|r| ids.contains(r))
            .collect();
        if ids.iter().all(|id| accepted.contains(id)) {
            for id in &ids {
                assert_eq!(
                    accepted.iter().filter(|r| *r == id).count(),
                    1,
                    "sent twice: {id}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A's messages not sent by B within 5 s of the kill ({} of {})",
            accepted.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("taken over and sent in {} ms", killed.elapsed().as_millis());
    drop(b);
}

/// Three instances, a gateway capped at 20 SMS/s each: together they send
/// at most 21/s (the rate split between the instances beating).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_rate_holds_across_instances() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(db) = avisa_store::testing::fresh_postgres_url().await else {
        return;
    };
    avisa_sms::http::init_tls();
    let fake = FakeTwilio::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let key = key();
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(start(dir.path(), name, &db, &key, &fake, 20).await);
    }
    // Every instance has seen the others beat.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut people = Vec::new();
    for (n, at) in instances.iter().enumerate() {
        people.push(person(at, &fake, &format!("+1213555020{n}"), 9).await);
    }
    let before = fake.accepted().len();
    let mut ids = Vec::new();
    for (n, auth) in people.iter().enumerate() {
        ids.extend(press(&instances[n], auth, &format!("rate-{n:04}")).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.accepted().len() < before + ids.len() {
        assert!(Instant::now() < deadline, "not all sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let times: Vec<Instant> = fake.accepted()[before..].iter().map(|m| m.at).collect();
    let (first, last) = (times[0], *times.last().expect("sent"));
    let rate = (times.len() - 1) as f64 / (last - first).as_secs_f64();
    eprintln!("{} messages at {rate:.1}/s across 3 instances", times.len());
    assert!(
        rate <= 21.0,
        "{rate:.1} SMS/s across instances capped at 20"
    );
    // And in no second more than 21.
    for start in &times {
        let in_window = times
            .iter()
            .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
            .count();
        assert!(in_window <= 21, "{in_window} in one second");
    }
}

/// PostgreSQL stopped with `-m fast` while presses are in flight: every
/// answer is 202 or 503 with Retry-After (the app then presses again with
/// its key), never a 500; back up, a press is accepted again (issue 37).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_shut_down_under_presses_answers_503_never_500() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(pg) = avisa_testkit::postgres::Cluster::init(dir.path()) else {
        eprintln!("skipped: starting a PostgreSQL cluster needs root and PostgreSQL's binaries");
        return;
    };
    pg.start();
    avisa_sms::http::init_tls();
    let fake = FakeTwilio::start().await;
    let key = key();
    let work = tempfile::tempdir().expect("dir");
    let a = start(work.path(), "a", &pg.url("127.0.0.1", ""), &key, &fake, 0).await;
    let auth = person(&a, &fake, "+12135550100", 2).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pressers: Vec<_> = (0..16)
        .map(|t| {
            let (base, auth, stop) = (a.base.clone(), auth.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let r = client
                        .post(format!("{base}/api/v1/alerts"))
                        .header("authorization", &auth)
                        .json(&json!({"idempotency_key": format!("shutdown-{t}-{n}")}))
                        .send()
                        .await
                        .expect("the server answers");
                    let retry = r.headers().contains_key("retry-after");
                    answers.push((r.status().as_u16(), retry));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.stop_fast();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = Vec::new();
    for p in pressers {
        answers.extend(p.await.expect("presser"));
    }
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    let refused = answers.iter().filter(|(s, _)| *s == 503).count();
    assert!(accepted > 0, "presses before the stop: {answers:?}");
    assert!(refused > 0, "presses after the stop: {answers:?}");
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(s, retry)| !(*s == 202 || (*s == 503 && *retry)))
        .collect();
    assert!(
        wrong.is_empty(),
        "only 202, or 503 with Retry-After: {wrong:?}"
    );
    eprintln!("{accepted} accepted, {refused} told to retry");

    // The database back: the press goes.
    pg.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/alerts", a.base))
            .header("authorization", &auth)
            .json(&json!({"idempotency_key": "after-the-restart"}))
            .send()
            .await
            .expect("press");
        if r.status().as_u16() == 202 {
            break;
        }
        assert_eq!(r.status().as_u16(), 503, "while reconnecting");
        assert!(
            Instant::now() < deadline,
            "no press accepted after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(a);
}
