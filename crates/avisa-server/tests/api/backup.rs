//! `avisa backup` while presses go on, and `avisa restore` into a fresh
//! data directory: every alert accepted before the copy began is in it,
//! each message with the state it had, and a server started on the copy
//! answers its person. The copy is owner-only and holds no master key.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, press, sqlite_app, test_config};

/// Each recipient's (id, status) of an alert, as its person sees it.
async fn recipients(app: &TestApp, token: &str, id: &str) -> Vec<(String, String)> {
    let (status, alert) = app.alert(token, id).await;
    assert_eq!(status, StatusCode::OK, "{alert}");
    let mut out: Vec<(String, String)> = alert["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_string(),
                r["status"].as_str().expect("status").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A fresh data directory configured with `app`'s master key.
fn fresh_beside(app: &TestApp) -> (tempfile::TempDir, avisa_server::Config) {
    let fresh = tempfile::tempdir().expect("dir");
    let mut config = test_config(&fresh);
    config.data_key_file = app.config.data_key_file();
    (fresh, config)
}

#[tokio::test]
async fn a_backup_under_load_restores_every_accepted_alert() {
    let app = Arc::new(sqlite_app().await);
    let mut tokens = Vec::new();
    for i in 0..4 {
        let token = app.person(&format!("+1213555{:04}", 100 + i)).await;
        let (status, body) = app
            .add_contact(
                &token,
                json!({"name": "Ana", "phone": format!("+1213555{:04}", 7000 + i), "language": "es", "message": "Me detuvieron."}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        tokens.push(token);
    }
    // Alerts accepted, and their messages sent, before the copy begins.
    let mut before = Vec::new();
    for i in 0..12 {
        let token = &tokens[i % tokens.len()];
        let (status, body) = press(
            &app,
            token,
            json!({"idempotency_key": format!("before-{i:04}"), "location": {"lat": 34.0505, "lon": -118.2551}}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        before.push((
            token.clone(),
            body["alert_id"].as_str().expect("id").to_string(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    for (token, id) in &before {
        loop {
            let r = recipients(&app, token, id).await;
            if r.iter().all(|(_, s)| s != "queued") {
                seen.push(r);
                break;
            }
            assert!(Instant::now() < deadline, "never sent: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Presses go on through the copy.
    let pressing = Arc::new(AtomicBool::new(true));
    let load = {
        let (app, tokens, pressing) = (app.clone(), tokens.clone(), pressing.clone());
        tokio::spawn(async move {
            let mut accepted = 0;
            let mut i = 0;
            while pressing.load(Ordering::Relaxed) {
                let token = &tokens[i % tokens.len()];
                let (status, _) = press(
                    &app,
                    token,
                    json!({"idempotency_key": format!("during-{i:05}"), "location": {"lat": 34.0505, "lon": -118.2551}}),
                )
                .await;
                if status == StatusCode::ACCEPTED {
                    accepted += 1;
                }
                i += 1;
            }
            accepted
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The last alert accepted before the copy: committed a moment ago, in
    // SQLite's WAL rather than its main file (a `cp` of avisa.db misses it).
    let (status, last) = press(
        &app,
        &tokens[0],
        json!({"idempotency_key": "last-before-the-copy", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{last}");
    let last_id = last["alert_id"].as_str().expect("id").to_string();
    let mut last_recipients: Vec<String> = last["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    last_recipients.sort();
    let out = tempfile::tempdir().expect("dir");
    let file = out.path().join("avisa-backup.db");
    let copied = avisa_server::backup(&app.config, &file)
        .await
        .expect("backup");
    pressing.store(false, Ordering::Relaxed);
    let during = load.await.expect("load");
    assert!(during > 0, "presses went on during the backup");
    assert_eq!(copied.path, file);
    assert!(copied.bytes > 0);
    // Never over a file, and nothing left half-written beside it.
    assert!(avisa_server::backup(&app.config, &file).await.is_err());
    let names: Vec<String> = std::fs::read_dir(out.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["avisa-backup.db"]);

    // Owner-only, and without the master key.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(app.config.data_key_file()).expect("key file");
    let bytes = std::fs::read(&file).expect("backup");
    let key = key.trim();
    assert!(key.len() >= 32);
    assert!(
        !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
        "the backup holds the master key"
    );

    // Restored into a fresh data directory, with the same key.
    let (fresh, config) = fresh_beside(&app);
    let restored = avisa_server::restore(&config, &file)
        .await
        .expect("restore");
    assert_eq!(restored.path, config.data_dir.join("avisa.db"));
    // Never over a database.
    let again = avisa_server::restore(&config, &file).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("empty data directory")),
        "{again:?}"
    );
    // A key that is not the database's is refused before anything is put.
    let other = tempfile::tempdir().expect("dir");
    let mut wrong = test_config(&other);
    wrong.data_key = avisa_core::crypto::DataKey::generate()
        .expect("key")
        .to_base64()
        .to_string()
        .into();
    let refused = avisa_server::restore(&wrong, &file).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("does not open")),
        "{refused:?}"
    );
    assert!(!wrong.data_dir.join("avisa.db").exists());

    // A server on the copy (sending nothing, so states stay as copied)
    // answers each person: every alert from before, each message as it was.
    let copy = TestApp::start_with(config, fresh, false).await;
    for ((token, id), seen) in before.iter().zip(&seen) {
        assert_eq!(&recipients(&copy, token, id).await, seen, "alert {id}");
    }
    let copied_last: Vec<String> = recipients(&copy, &tokens[0], &last_id)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        copied_last, last_recipients,
        "the last alert before the copy"
    );

    drop(copy);

    // Quiet again: the latest commit sits in SQLite's WAL until a
    // checkpoint, and a copy of the main file alone (`cp avisa.db`) would
    // miss it; the backup has it.
    let (status, quiet) = press(
        &app,
        &tokens[1],
        json!({"idempotency_key": "quiet-before-the-copy", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{quiet}");
    let quiet_id = quiet["alert_id"].as_str().expect("id").to_string();
    let file = out.path().join("quiet.db");
    avisa_server::backup(&app.config, &file)
        .await
        .expect("backup");
    let (fresh, config) = fresh_beside(&app);
    avisa_server::restore(&config, &file)
        .await
        .expect("restore");
    let copy = TestApp::start_with(config, fresh, false).await;
    let (status, alert) = copy.alert(&tokens[1], &quiet_id).await;
    assert_eq!(status, StatusCode::OK, "{alert}");

    // On PostgreSQL both commands name its own tools and copy nothing.
    let mut postgres = test_config(&other);
    postgres.database_url = "postgres://postgres@127.0.0.1:5432/test".to_string().into();
    let told = avisa_server::backup(&postgres, &out.path().join("pg.db")).await;
    assert!(
        told.as_ref()
            .is_err_and(|e| e.to_string().contains("pg_dump")),
        "{told:?}"
    );
    let told = avisa_server::restore(&postgres, &file).await;
    assert!(
        told.as_ref()
            .is_err_and(|e| e.to_string().contains("pg_restore")),
        "{told:?}"
    );
    assert!(!out.path().join("pg.db").exists());
}
