//! Starting a real server on port 0 with a fresh database, and talking to it.

use std::path::PathBuf;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use avisa_server::{App, Config};
use avisa_store::testing;

/// Defaults, with the data in a temporary directory and a quiet log gateway.
pub fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.path().join("data"),
        // Apart from the data, as by default, and in the test's own directory.
        data_key_file: dir.path().join("keys").join("data.key"),
        ..Config::default()
    };
    config.sms.log_echo = false;
    // Tests register many devices a minute; the proof of work has its own.
    config.limits.codes_without_challenge_per_minute = 1000;
    config
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub config: Config,
    pub dispatcher: std::sync::Arc<avisa_server::dispatch::Dispatcher>,
    /// The server's background tasks (to kill one, as a crash would).
    pub tasks: avisa_server::supervisor::Supervisor,
    /// The unlock each person's device got when it set its PIN: `call` and
    /// `raw` send it, as the app does once the PIN was entered. Tests of the
    /// PIN's protection use `call_without_unlock`.
    pub unlocks: std::sync::Mutex<std::collections::HashMap<String, String>>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts a server on SQLite ("sqlite") or a fresh PostgreSQL database
    /// ("postgres"; None when PostgreSQL is unreachable outside CI).
    pub async fn spawn(backend: &str) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir);
        if backend == "postgres" {
            config.database_url = testing::fresh_postgres_url().await?.into();
        }
        Some(Self::start(config, dir).await)
    }

    pub async fn start(config: Config, dir: tempfile::TempDir) -> TestApp {
        Self::start_with(config, dir, true).await
    }

    /// As [`TestApp::start`]; with `run_dispatcher` false nothing is sent
    /// until the test drives `app.dispatcher` itself.
    pub async fn start_with(
        mut config: Config,
        dir: tempfile::TempDir,
        run_dispatcher: bool,
    ) -> TestApp {
        avisa_sms::http::init_tls();
        // Bound first, so links and webhook URLs (public_url) name the real port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        config.public_url = base.clone();
        let mut app = App::build(config.clone()).await.expect("build the app");
        app.run_dispatcher = run_dispatcher;
        let dispatcher = app.dispatcher.clone();
        let tasks = app.state.tasks.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(avisa_server::serve(listener, app, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            client: Client::new(),
            config,
            dispatcher,
            tasks,
            unlocks: Default::default(),
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("clean shutdown");
        }
    }

    /// The body of a GET on `path`, as text.
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text")
    }

    /// Waits until the periodic job (or task) `job` has done `n` more
    /// rounds. "And nothing more happens" waits for the job that would make
    /// it happen, not for a fixed time: on a slow machine a sleep may end
    /// before the job ran again, and on a fast one it wastes seconds.
    pub async fn rounds(&self, job: &str, n: u64) {
        let beats = || {
            self.tasks
                .beats(job)
                .unwrap_or_else(|| panic!("no task {job}"))
        };
        let until = beats() + n;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while beats() < until {
            assert!(
                std::time::Instant::now() < deadline,
                "{job} did not run {n} rounds in 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until `job` has run two whole rounds since the call, and the
    /// dispatcher has then taken and sent whatever they queued: what the
    /// job would do twice more, it has done.
    pub async fn settled(&self, job: &str) {
        // The round under way may have begun before the call: two more
        // beats make one whole round after it.
        self.rounds(job, 2).await;
        // A round claims, and sends in the next turn at the latest.
        self.rounds("dispatcher", 3).await;
    }

    pub fn sms_log(&self) -> PathBuf {
        self.config.sms_log_file()
    }

    pub fn sms_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.sms_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    /// Waits until the log gateway has written `n` SMS, and returns them.
    pub async fn wait_sms(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.sms_lines();
            if lines.len() >= n {
                assert_eq!(lines.len(), n, "more SMS than expected: {lines:#?}");
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} SMS arrived",
                lines.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits for an SMS to a number that satisfies `pred`, and returns it.
    pub async fn wait_sms_to(&self, phone: &str, pred: impl Fn(&str) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .sms_lines()
                .into_iter()
                .rev()
                .find(|l| l["to"] == phone && l["body"].as_str().is_some_and(&pred))
            {
                return line;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no matching SMS to {phone}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The last verification code sent to a number, read from sms-log.jsonl.
    pub async fn last_code(&self, phone: &str) -> String {
        let line = self
            .wait_sms_to(phone, |b| {
                b.contains("Avisa:") && b.chars().filter(char::is_ascii_digit).count() >= 6
            })
            .await;
        let body = line["body"].as_str().expect("body");
        body.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .expect("a 6-digit code")
            .to_string()
    }

    /// The unlock this device holds, if it set a PIN here.
    pub fn unlock_of(&self, token: &str) -> Option<String> {
        self.unlocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    /// Keeps an unlock from a response that carries one.
    pub fn remember_unlock(&self, token: &str, body: &Value) {
        if let Some(u) = body["unlock"].as_str() {
            self.unlocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(token.to_string(), u.to_string());
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let unlock = token.and_then(|t| self.unlock_of(t));
        self.call_with(method, path, token, unlock.as_deref(), body)
            .await
    }

    /// As `call`, as whoever holds the phone without knowing the PIN.
    pub async fn call_without_unlock(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, token, None, body).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        unlock: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(u) = unlock {
            req = req.header("x-avisa-unlock", u);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        // As the app does: an unlock a response hands over is kept.
        if let Some(t) = token {
            self.remember_unlock(t, &value);
        }
        (status, value)
    }

    // One typed helper per endpoint the tests call most: a test reads as
    // what the app does, and a route's path or method changes in one place.

    /// `POST /api/v1/contacts`.
    pub async fn add_contact(&self, token: &str, contact: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/contacts", Some(token), Some(contact))
            .await
    }

    /// `GET /api/v1/contacts`.
    pub async fn contacts(&self, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, "/api/v1/contacts", Some(token), None)
            .await
    }

    /// `PUT /api/v1/profile`.
    pub async fn put_profile(&self, token: &str, profile: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, "/api/v1/profile", Some(token), Some(profile))
            .await
    }

    /// `GET /api/v1/profile`.
    pub async fn profile(&self, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, "/api/v1/profile", Some(token), None)
            .await
    }

    /// `POST /api/v1/pin/check`.
    pub async fn check_pin(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/pin/check", Some(token), Some(body))
            .await
    }

    /// `GET /api/v1/alerts/{id}`.
    pub async fn alert(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/api/v1/alerts/{id}"),
            Some(token),
            None,
        )
        .await
    }

    /// `POST /api/v1/alerts/{id}/cancel`.
    pub async fn cancel(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/alerts/{id}/cancel");
        self.call(Method::POST, &path, Some(token), Some(body))
            .await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(t) = token {
            if let Some(u) = self.unlock_of(t) {
                req = req.header("x-avisa-unlock", u);
            }
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn register(&self, phone: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/devices",
                None,
                Some(json!({"phone": phone})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A verified device for a number (E.164), returning its token.
    pub async fn verified(&self, phone: &str) -> String {
        let token = self.register(phone).await;
        let code = self.last_code(phone).await;
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/devices/verify",
                Some(&token),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        token
    }

    /// A verified person with a complete profile (PIN 4821).
    pub async fn person(&self, phone: &str) -> String {
        let token = self.verified(phone).await;
        let (status, body) = self
            .call(
                Method::PUT,
                "/api/v1/profile",
                Some(&token),
                Some(profile_body()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.remember_unlock(&token, &body);
        token
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn profile_body() -> Value {
    json!({
        "name": "María Pérez",
        "home_state": "ca",
        "home_county": "Los Angeles",
        "language": "es",
        "cancel_pin": "4821",
        "keyword": "auxilio"
    })
}

/// `POST /api/v1/alerts` as the person of `token`.
pub async fn press(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/alerts", Some(token), Some(body))
        .await
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

pub async fn sqlite_app() -> TestApp {
    TestApp::spawn("sqlite").await.expect("sqlite app")
}

/// Defaults for a test on one backend: SQLite in the temporary directory, or
/// a fresh PostgreSQL database (None when PostgreSQL is unreachable outside
/// CI).
pub async fn config_on(dir: &tempfile::TempDir, backend: &str) -> Option<Config> {
    let mut config = test_config(dir);
    if backend == "postgres" {
        config.database_url = testing::fresh_postgres_url().await?.into();
    }
    Some(config)
}

/// A server on one backend, with its dispatcher running.
pub async fn app_on(backend: &str) -> Option<TestApp> {
    TestApp::spawn(backend).await
}

/// Runs each named `async fn name(backend: &str)` as two tests, `name::sqlite`
/// and `name::postgres`: the pipeline behaves the same on both.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name("sqlite").await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name("postgres").await;
                }
            }
        )+
    };
}
pub(crate) use on_both_backends;

/// Everything the database holds, as bytes an attacker with a copy would
/// read: the SQLite files (WAL included), or a PostgreSQL dump.
pub fn raw_database(app: &TestApp) -> String {
    use secrecy::ExposeSecret;
    let url = app.config.database_url.expose_secret().to_string();
    let bytes = if url.is_empty() {
        let db = app.config.data_dir.join("avisa.db");
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
                bytes.extend(b);
            }
        }
        bytes
    } else {
        let out = std::process::Command::new("pg_dump")
            .args(["--inserts", &url])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert!(bytes.len() > 4096, "the database was read");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Everything this test process logged (Avisa's own crates, every level),
/// as an operator's journal would hold it: installed on first use, shared by
/// the tests of the process.
pub fn captured_logs() -> String {
    use std::sync::{Arc, Mutex, OnceLock};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static SINK: OnceLock<Sink> = OnceLock::new();
    let sink = SINK.get_or_init(|| {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "avisa=trace,avisa_server=trace,avisa_store=trace,avisa_sms=trace,avisa_core=trace",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // Another test may have installed one first: then this one is not
        // the process's, and what it captures is empty (the caller checks).
        let _ = tracing::subscriber::set_global_default(subscriber);
        sink
    });
    String::from_utf8_lossy(&sink.0.lock().expect("log sink")).into_owned()
}
