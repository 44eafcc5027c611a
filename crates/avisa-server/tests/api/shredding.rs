//! "Delete my data" as an investigator holding the master key would test
//! it: after a whole scenario (profile, contacts, an alert with a trail, a
//! staff note, the cancel) and the deletion, every file of the database
//! (SQLite: the database, its WAL and shared memory; PostgreSQL: a pg_dump
//! and the test database's table files) is scanned for the one thing that
//! would open the person's values — their wrapped key — with the master
//! key in hand. Before the deletion the same scan finds it (the scan
//! works); after, nowhere. On both backends.

use std::path::PathBuf;

use avisa_core::crypto::Vault;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use crate::console::{login, staffed_app};
use crate::support::*;

/// A wrapped person key: version, nonce, 32 bytes, tag.
const WRAPPED_LEN: usize = 1 + 24 + 32 + 16;

/// Places in `bytes` where a sealed key (a version byte of 1, then
/// `WRAPPED_LEN` bytes in all) opens by `opens`: the carver.
fn places_opening(bytes: &[u8], opens: impl Fn(&[u8]) -> bool) -> usize {
    if bytes.len() < WRAPPED_LEN {
        return 0;
    }
    (0..=bytes.len() - WRAPPED_LEN)
        .filter(|&i| bytes[i] == 1 && opens(&bytes[i..i + WRAPPED_LEN]))
        .count()
}

/// Places in `bytes` where the person's key, wrapped by the root key,
/// opens.
fn wrapped_keys(vault: &Vault, person: Uuid, bytes: &[u8]) -> usize {
    places_opening(bytes, |w| {
        vault.open_person_key(*person.as_bytes(), w).is_ok()
    })
}

/// pg_dump's text holds bytes as `\x…` hex: every such run, decoded.
fn hex_runs(dump: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in dump.split("\\x").skip(1) {
        let hex: String = part.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        let bytes = hex.as_bytes();
        for pair in bytes.chunks_exact(2) {
            let text = std::str::from_utf8(pair).expect("ascii");
            out.push(u8::from_str_radix(text, 16).expect("hex"));
        }
        // A separator, so two runs never join into a false key.
        out.extend([0u8; WRAPPED_LEN]);
    }
    out
}

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Places in `bytes` where a root key wrapped by the master key `key`
/// opens.
fn wrapped_roots(key: &avisa_core::crypto::DataKey, bytes: &[u8]) -> usize {
    let vault = Vault::new(key);
    places_opening(bytes, |w| vault.unwrap_key(b"root_key", w).is_ok())
}

/// Every file the scan reads, by name, with its bytes.
fn database_files(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let url = app.config.database_url.expose_secret().to_string();
    if url.is_empty() {
        let db = app.config.data_dir.join("avisa.db");
        return ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                let path = format!("{}{suffix}", db.display());
                std::fs::read(&path).ok().map(|b| (path, b))
            })
            .collect();
    }
    let dump = std::process::Command::new("pg_dump")
        .args(["--inserts", &url])
        .output()
        .expect("run pg_dump");
    assert!(dump.status.success(), "pg_dump failed");
    let mut files = vec![(
        "pg_dump".to_string(),
        hex_runs(&String::from_utf8_lossy(&dump.stdout)),
    )];
    // The table files themselves, where this process may read them (the
    // server on this machine, run as a user who can): what a copy of the
    // server's disk would hold, after a checkpoint wrote the buffers.
    psql(&url, "CHECKPOINT");
    let dir = psql(&url, "SHOW data_directory");
    let paths = psql(
        &url,
        "SELECT pg_relation_filepath(c.oid) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 't', 'i') \
           AND pg_relation_filepath(c.oid) IS NOT NULL",
    );
    let mut read = 0;
    for rel in paths.lines().filter(|l| !l.is_empty()) {
        let path = PathBuf::from(dir.trim()).join(rel);
        if let Ok(bytes) = std::fs::read(&path) {
            read += 1;
            files.push((path.display().to_string(), bytes));
        }
    }
    eprintln!("table files read: {read}");
    files
}

async fn deleted_means_unreadable(backend: &str) {
    let Some(mut app) = staffed_app(backend, |c| {
        c.alerts.trail_every = std::time::Duration::ZERO
    })
    .await
    else {
        return;
    };
    let phone = "+12135550166";
    let token = app.person(phone).await;
    let (s, _) = app
        .put_profile(&token, json!({"name": "Guadalupe Xochitl Ramirez", "home_state": "CA", "home_county": "Los Angeles", "language": "es", "cancel_pin": "4821", "current_pin": "4821", "keyword": "socorro"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .add_contact(&token, json!({"name": "Esperanza Quetzalli", "phone": "+52 55 9876 5432", "message": "Llama a la licenciada Torres"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, alert) = press(
        &app,
        &token,
        json!({"idempotency_key": "shredding-1", "location": {"lat": 34.0505, "lon": -118.2551}}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{alert}");
    let id = alert["alert_id"].as_str().expect("id").to_string();
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/alerts/{id}/locations"),
            Some(&token),
            Some(json!({"lat": 34.06, "lon": -118.24})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    app.wait_sms_to("+525598765432", |_| true).await;
    let console = login(&app, "la.operator").await;
    let (s, _) = console
        .call(
            Method::POST,
            &format!("/api/v1/console/alerts/{id}/notes"),
            Some(json!({"text": "Su hermana dice que está en Adelanto"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.cancel(&token, &id, json!({"pin": "4821"})).await;
    assert_eq!(s, StatusCode::OK);

    // The investigator's tool: the master key opens the root key.
    let investigator = avisa_server::open_store(&app.config).await.expect("store");
    let person = investigator
        .person_by_phone(&avisa_core::PhoneNumber::parse(phone).expect("phone"))
        .await
        .expect("read")
        .expect("the person")
        .id;
    let found: usize = database_files(&app)
        .iter()
        .map(|(_, b)| wrapped_keys(investigator.vault(), person, b))
        .sum();
    assert!(found >= 1, "the scan finds the key while the person exists");

    let (s, _) = app
        .call(
            Method::DELETE,
            "/api/v1/profile",
            Some(&token),
            Some(json!({"pin": "4821"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    app.stop().await;

    for (name, bytes) in database_files(&app) {
        assert_eq!(
            wrapped_keys(investigator.vault(), person, &bytes),
            0,
            "{name} still holds the deleted person's key ({backend})"
        );
    }
    assert!(
        investigator
            .person_by_phone(&avisa_core::PhoneNumber::parse(phone).expect("phone"))
            .await
            .expect("read")
            .is_none()
    );
    let text = raw_database(&app);
    for needle in [
        "Guadalupe",
        "Quetzalli",
        "Adelanto",
        "2135550166",
        "5598765432",
    ] {
        assert!(!text.contains(needle), "{needle} in plain text ({backend})");
    }
    investigator.close().await;
}

#[tokio::test]
async fn deleted_means_unreadable_sqlite() {
    deleted_means_unreadable("sqlite").await;
}

#[tokio::test]
async fn deleted_means_unreadable_postgres() {
    deleted_means_unreadable("postgres").await;
}

/// `avisa key rotate` while presses keep coming: every press accepted,
/// the old key opens nothing afterwards, and every person's data opens
/// with the new one (the running server never noticed).
async fn rotation_under_load(backend: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(mut config) = config_on(&dir, backend).await else {
        return;
    };
    config.alerts.rate_limit = 1000;
    let app = TestApp::start(config, dir).await;
    let mut people = Vec::new();
    for i in 0..3 {
        let phone = format!("+1213555014{i}");
        let token = app.person(&phone).await;
        let (s, _) = app
            .add_contact(&token, json!({"name": format!("Contacto {i}"), "phone": "+12135557000", "message": "Ayuda"}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        people.push((phone, token));
    }
    let old = std::fs::read_to_string(app.config.data_key_file()).expect("key");
    let old_key = avisa_core::crypto::DataKey::from_base64(old.trim()).expect("the old key");
    let found: usize = database_files(&app)
        .iter()
        .map(|(_, b)| wrapped_roots(&old_key, b))
        .sum();
    assert!(found >= 1, "the scan finds the root key the old key wraps");
    let app = std::sync::Arc::new(app);
    let pressing = {
        let app = app.clone();
        let tokens: Vec<String> = people.iter().map(|(_, t)| t.clone()).collect();
        tokio::spawn(async move {
            let mut accepted = 0;
            for n in 0..30 {
                let token = &tokens[n % tokens.len()];
                let (s, body) = press(
                    &app,
                    token,
                    json!({"idempotency_key": format!("rotation-{n:04}"), "practice": true}),
                )
                .await;
                assert_eq!(s, StatusCode::ACCEPTED, "{body}");
                accepted += 1;
            }
            accepted
        })
    };
    let rotation = avisa_server::rotate_key(&app.config, None)
        .await
        .expect("rotate");
    assert!(!rotation.from_environment);
    assert!(
        !rotation.old_key_still_root,
        "a new database has its own root key"
    );
    assert_eq!(pressing.await.expect("presses"), 30);
    // After it too, on the same running server.
    let (s, _) = press(
        &app,
        &people[0].1,
        json!({"idempotency_key": "rotation-after", "practice": true}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);

    let new = std::fs::read_to_string(app.config.data_key_file()).expect("key");
    assert_ne!(old, new);
    // A copy of the database's files taken now (the server still running):
    // the old key opens no root key in any of them. (PostgreSQL's WAL is
    // not among them: it keeps the old row until its segments recycle.)
    for (name, bytes) in database_files(&app) {
        assert_eq!(
            wrapped_roots(&old_key, &bytes),
            0,
            "{name} still holds the root key wrapped by the old key ({backend})"
        );
    }
    let mut with_old = app.config.clone();
    with_old.data_key = old.trim().to_string().into();
    assert_eq!(
        avisa_server::check_key(&with_old).await.expect("check"),
        Some(false)
    );
    assert!(avisa_server::open_store(&with_old).await.is_err());
    let store = avisa_server::open_store(&app.config)
        .await
        .expect("new key");
    for (phone, _) in &people {
        let person = store
            .person_by_phone(&avisa_core::PhoneNumber::parse(phone).expect("phone"))
            .await
            .expect("read")
            .expect("the person");
        assert_eq!(person.profile.name.as_deref(), Some("María Pérez"));
        let contacts = store.contacts(person.id).await.expect("contacts");
        assert_eq!(contacts.len(), 1);
    }
    store.close().await;
    if let Ok(mut app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test]
async fn rotation_under_load_sqlite() {
    rotation_under_load("sqlite").await;
}

#[tokio::test]
async fn rotation_under_load_postgres() {
    rotation_under_load("postgres").await;
}
