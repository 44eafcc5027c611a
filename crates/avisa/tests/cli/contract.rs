//! The OpenAPI document is the contract: schemathesis (every check, the
//! stateful phase included) runs against `avisa serve` on its embedded
//! defaults, with a verified device's token and a staff member's session,
//! and must find nothing. Its
//! configuration is `.ci/schemathesis.toml`; `.ci/run` installs the pinned
//! schemathesis into `target/schemathesis`. Skipped with a message where it
//! is missing, except under `CI=true`, where that fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the virtualenv schemathesis is installed in.
fn schemathesis_python() -> Option<PathBuf> {
    let path = std::env::var_os("AVISA_SCHEMATHESIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/schemathesis/bin/python3"));
    path.exists().then_some(path)
}

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The webhooks' secrets on the contract server (test values).
const TWILIO_TOKEN: &str = "contract-twilio-auth-token";
const KANNEL_TOKEN: &str = "contract-kannel-inbound-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_api_true_to_its_document() {
    let Some(python) = schemathesis_python() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "schemathesis is missing under CI=true (.ci/run installs it in target/schemathesis)"
        );
        eprintln!("skipping schemathesis: not installed (see .ci/run)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    // The log gateway sends; Twilio and Kannel are configured (at an
    // address nobody answers) so their webhooks check real signatures and
    // tokens, which the hooks (.ci/st_hooks.py) give schemathesis.
    let config = format!(
        "public_url = \"{{base}}\"\n\
         [[sms.gateways]]\nkind = \"log\"\n\
         [[sms.gateways]]\nkind = \"twilio\"\nbase_url = \"http://127.0.0.1:9\"\n\
         account_sid = \"ACcontract\"\nauth_token = \"{TWILIO_TOKEN}\"\nfrom = \"+15005550006\"\n\
         [[sms.gateways]]\nkind = \"kannel\"\nsendsms_url = \"http://127.0.0.1:9/cgi-bin/sendsms\"\n\
         username = \"avisa\"\npassword = \"contract\"\nfrom = \"+15005550006\"\n\
         inbound_token = \"{KANNEL_TOKEN}\"\n"
    );
    let (child, base) = super::serve_with(dir.path(), Some(&config)).await;
    let _server = Server(child);
    let client = reqwest::Client::new();
    // A verified device, so the person's routes are reached past 401.
    let device: serde_json::Value = client
        .post(format!("{base}/api/v1/devices"))
        .json(&serde_json::json!({"phone": "+12135550100"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let token = device["token"].as_str().expect("token").to_string();
    let log = dir.path().join("avisa-data/sms-log.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(code) = text.lines().find_map(|l| {
            let body = serde_json::from_str::<serde_json::Value>(l).ok()?["body"]
                .as_str()?
                .to_string();
            body.split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_string)
        }) {
            break code;
        }
        assert!(Instant::now() < deadline, "no code was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let verified = client
        .post(format!("{base}/api/v1/devices/verify"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"code": code}))
        .send()
        .await
        .expect("verify");
    assert!(verified.status().is_success());
    // A staff member logged in, so the console's routes are reached too.
    let password = "correct horse battery staple";
    let added = super::avisa_stdin(
        dir.path(),
        &[
            "staff",
            "add",
            "--username",
            "la.super",
            "--consulate",
            "los-angeles",
            "--role",
            "supervisor",
        ],
        &format!("{password}\n"),
    );
    assert!(added.status.success(), "{added:?}");
    let login = client
        .post(format!("{base}/api/v1/console/login"))
        .json(&serde_json::json!({"username": "la.super", "password": password}))
        .send()
        .await
        .expect("login");
    assert!(login.status().is_success());
    let session = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("the session cookie");
    let me: serde_json::Value = login.json().await.expect("json");
    let csrf = me["csrf_token"].as_str().expect("csrf").to_string();

    let public = base.clone();
    let out = tokio::task::spawn_blocking(move || {
        // .ci/st.py is schemathesis's own command line with a
        // CPython 3.11 bug worked around (see there).
        Command::new(python)
            .current_dir(workspace())
            .args([".ci/st.py", "--no-color"])
            .args(["--config-file", ".ci/schemathesis.toml", "run"])
            .arg(format!("{base}/api/openapi.json"))
            .args(["--checks", "all", "--max-examples", "25", "--workers", "2"])
            .args(["--seed", "20261126", "--generation-database", "none"])
            .env("AVISA_ST_DEVICE_TOKEN", token)
            .env("AVISA_ST_CONSOLE_SESSION", session)
            .env("AVISA_ST_CONSOLE_CSRF", csrf)
            .env("SCHEMATHESIS_HOOKS", "st_hooks")
            .env("PYTHONPATH", workspace().join(".ci"))
            .env("AVISA_ST_PUBLIC_URL", &public)
            .env("AVISA_ST_TWILIO_TOKEN", TWILIO_TOKEN)
            .env("AVISA_ST_KANNEL_TOKEN", KANNEL_TOKEN)
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("join");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found the API and its document apart:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
