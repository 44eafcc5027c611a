//! TLS to PostgreSQL, against a cluster of the test's own: `initdb` in a
//! temporary directory, a certificate authority and a server certificate
//! made with openssl, `ssl = on`, connections only over TLS (`hostssl`).
//! `sslmode=verify-full` with the right CA connects and the store works; a
//! CA that did not sign the server's certificate is refused, saying so.
//!
//! Runs where it can start a cluster: as root with PostgreSQL's binaries
//! and `runuser` (CI); elsewhere it says why it did not.

use std::path::{Path, PathBuf};
use std::process::Command;

use avisa_core::crypto::DataKey;
use avisa_store::Store;
use avisa_testkit::postgres::{Cluster, give_to_postgres, run};

/// A CA and a certificate it signs for `localhost` / 127.0.0.1, in `dir`:
/// (ca.pem, server.crt, server.key).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let key = dir.join(format!("{name}-server.key"));
    let csr = dir.join(format!("{name}-server.csr"));
    let crt = dir.join(format!("{name}-server.crt"));
    let ext = dir.join(format!("{name}-ext.cnf"));
    run(
        "CA",
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN=Avisa test CA {name}")])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    run(
        "server key",
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
    run(
        "server certificate",
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt),
    );
    (ca, crt, key)
}

/// A cluster of the test's own, serving TLS only over TCP.
fn start_cluster(dir: &Path, crt: &Path, key: &Path) -> Option<Cluster> {
    let cluster = Cluster::init(dir)?;
    // The server's key and certificate, readable by the server alone.
    let (server_crt, server_key) = (
        cluster.data.join("server.crt"),
        cluster.data.join("server.key"),
    );
    std::fs::copy(crt, &server_crt).expect("crt");
    std::fs::copy(key, &server_key).expect("key");
    give_to_postgres(&[&server_crt, &server_key]);
    run("chmod", Command::new("chmod").arg("600").arg(&server_key));
    cluster.configure("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    // TLS or nothing, over TCP.
    std::fs::write(
        cluster.data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    .expect("hba");
    cluster.start();
    Some(cluster)
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca, crt, key) = certificates(dir.path(), "right");
    let (other_ca, _, _) = certificates(dir.path(), "other");
    let Some(cluster) = start_cluster(dir.path(), &crt, &key) else {
        eprintln!("skipped: starting a PostgreSQL cluster needs root and PostgreSQL's binaries");
        return;
    };
    let url = |ca: &Path, mode: &str| {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode={mode}&sslrootcert={}",
            cluster.port,
            ca.display()
        )
    };

    // verify-full with the CA that signed it: connected, over TLS, usable.
    let db = avisa_store::connect(&url(&ca, "verify-full"))
        .await
        .expect("verify-full connects");
    assert_eq!(db.uses_tls().await.expect("ask"), Some(true));
    let store = Store::open(db, &DataKey::generate().expect("key"))
        .await
        .expect("the store opens over TLS");
    store.close().await;

    // Another CA: refused, and the error says why.
    let err = avisa_store::connect(&url(&other_ca, "verify-full"))
        .await
        .err()
        .expect("a CA that did not sign the certificate is refused");
    let text = err.to_string();
    eprintln!("another CA: {text}");
    assert!(
        text.contains("certificate does not verify") && text.contains("UnknownIssuer"),
        "{text}"
    );

    // A CA file that is not there: named, with its setting, once.
    let err = avisa_store::connect(&url(&dir.path().join("nowhere.pem"), "verify-full"))
        .await
        .err()
        .expect("a missing CA file is refused");
    let text = err.to_string();
    assert!(
        text.contains("sslrootcert") && text.contains("nowhere.pem"),
        "{text}"
    );

    // Without TLS the server refuses (hostnossl reject).
    assert!(
        avisa_store::connect(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            cluster.port
        ))
        .await
        .is_err()
    );
}
