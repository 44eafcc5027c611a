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

fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    cmd
}

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

/// A running cluster; stopped when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn start_cluster(dir: &Path, crt: &Path, key: &Path) -> Option<Cluster> {
    let bin = pg_bin()?;
    let data = dir.join("pg");
    std::fs::create_dir(&data).expect("dir");
    // The server's key and certificate, readable by the server alone.
    let (server_crt, server_key) = (data.join("server.crt"), data.join("server.key"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    run(
        "chown",
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir),
    );
    run(
        "initdb",
        as_postgres(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data),
    );
    std::fs::copy(crt, &server_crt).expect("crt");
    std::fs::copy(key, &server_key).expect("key");
    run(
        "chown",
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&server_crt)
            .arg(&server_key),
    );
    run("chmod", Command::new("chmod").arg("600").arg(&server_key));
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
    conf.push_str(&format!(
        "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        data.display()
    ));
    std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
    // TLS or nothing, over TCP.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    .expect("hba");
    run(
        "pg_ctl start",
        as_postgres(&bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("log"))
            .args(["-w", "start"]),
    );
    Some(Cluster { bin, data, port })
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server() {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || pg_bin().is_none() {
        eprintln!("skipped: starting a PostgreSQL cluster needs root and PostgreSQL's binaries");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (ca, crt, key) = certificates(dir.path(), "right");
    let (other_ca, _, _) = certificates(dir.path(), "other");
    let cluster = start_cluster(dir.path(), &crt, &key).expect("a cluster");
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
