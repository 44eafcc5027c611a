//! A PostgreSQL cluster of a test's own: `initdb` in a temporary
//! directory, run as the `postgres` user, on a free port of loopback, to
//! configure (TLS) or stop under load as the shared server cannot be.
//! Needs root (for `runuser`) and PostgreSQL's server programs; where they
//! are missing [`Cluster::init`] answers None and the test says so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An initialised cluster; stopped (`-m immediate`) when dropped.
pub struct Cluster {
    bin: PathBuf,
    /// Its data directory (`postgresql.conf`, `pg_hba.conf` are here).
    pub data: PathBuf,
    pub port: u16,
}

fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a command, panicking with its output when it fails.
pub fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives `paths` to the `postgres` user.
pub fn give_to_postgres(paths: &[&Path]) {
    run(
        "chown",
        Command::new("chown").arg("postgres:postgres").args(paths),
    );
}

impl Cluster {
    /// `initdb` in `dir/pg` (trust authentication, user `postgres`), set
    /// to listen on 127.0.0.1 at a free port with its socket in its data
    /// directory. Not started: [`Cluster::start`].
    pub fn init(dir: &Path) -> Option<Cluster> {
        if !is_root() {
            return None;
        }
        let bin = pg_bin()?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let data = dir.join("pg");
        std::fs::create_dir(&data).expect("dir");
        run(
            "chown",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let cluster = Cluster { bin, data, port };
        run(
            "initdb",
            cluster
                .as_postgres("initdb")
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&cluster.data),
        );
        cluster.configure(&format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            cluster.data.display()
        ));
        Some(cluster)
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        cmd
    }

    /// Adds lines to `postgresql.conf`.
    pub fn configure(&self, lines: &str) {
        let path = self.data.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&path).expect("conf");
        conf.push('\n');
        conf.push_str(lines);
        std::fs::write(path, conf).expect("conf");
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&self) {
        run(
            "pg_ctl start",
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.data.join("log"))
                .args(["-w", "start"]),
        );
    }

    /// `pg_ctl stop -m fast`: every session terminated ("terminating
    /// connection due to administrator command"), then down.
    pub fn stop_fast(&self) {
        run(
            "pg_ctl stop",
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"]),
        );
    }

    /// A URL to its `postgres` database at `host`, with `query` after `?`
    /// when not empty.
    pub fn url(&self, host: &str, query: &str) -> String {
        let mut url = format!("postgres://postgres@{host}:{}/postgres", self.port);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
