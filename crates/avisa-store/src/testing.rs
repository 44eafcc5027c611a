//! Helpers for tests (this crate's and the server's): a fresh database per
//! test on either backend.
//!
//! PostgreSQL tests use `AVISA_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`) to create a database of their
//! own. When it is unreachable they are skipped with a message, except under
//! `CI=true`, where that is a failure: CI must never pass by skipping. The
//! database is dropped when the test's thread ends, however the test ended.

use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn admin_url() -> String {
    std::env::var("AVISA_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// Creates an empty PostgreSQL database and returns its URL, or None (after
/// printing why) when PostgreSQL is unreachable outside CI.
///
/// # Panics
/// Under `CI=true` when PostgreSQL is unreachable.
pub async fn fresh_postgres_url() -> Option<String> {
    let admin = admin_url();
    let mut conn = match PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is unreachable at {admin} and CI=true: {e}");
            }
            eprintln!("skipping a PostgreSQL test: unreachable at {admin}: {e}");
            return None;
        }
    };
    let name = format!("avisa_test_{}", Uuid::new_v4().simple());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let url = format!("{base}/{name}");
    // Dropped when the thread that made it ends: a test's own thread, so
    // when the test ends, passed or failed, after what it started is gone.
    MADE_HERE.with(|made| made.borrow_mut().push(DropDatabase::new(&url)));
    Some(url)
}

thread_local! {
    /// The test databases this thread made, dropped with it.
    static MADE_HERE: std::cell::RefCell<Vec<DropDatabase>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Drops, when dropped, the test database a URL names (one made by
/// [`fresh_postgres_url`]; any other URL is left alone): hold one for as
/// long as the test runs, and its database goes when the test ends, also
/// when it fails (a panic unwinds through it). Connections still open to it
/// (a server the test started) are ended first.
pub struct DropDatabase(Option<String>);

impl DropDatabase {
    pub fn new(url: &str) -> DropDatabase {
        DropDatabase(test_database_name(url).map(str::to_string))
    }
}

/// The database's name when `url` names one of the tests' own.
fn test_database_name(url: &str) -> Option<&str> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return None;
    }
    let name = url.rsplit_once('/')?.1;
    let name = name.split_once('?').map_or(name, |(n, _)| n);
    (name.starts_with("avisa_test_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let Some(name) = self.0.take() else {
            return;
        };
        // Its own thread and runtime: a drop cannot await, and may run
        // inside (or after) the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("a test database was not dropped: {e}"),
            Err(_) => eprintln!("a test database was not dropped: the dropping thread panicked"),
        }
    }
}

/// A `sqlite:` URL for a new database file in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite:{}", dir.join("avisa.db").display())
}

/// Runs one statement on a database by URL, as an older Avisa or an
/// operator's hand would have written it (for tests of upgrades).
pub async fn execute(url: &str, sql: &str) -> Result<u64, crate::StoreError> {
    let db = crate::connect(url).await?;
    let done = crate::db::db_run!(db.writer(), |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(pool)
            .await?
            .rows_affected()
    });
    db.close().await;
    Ok(done)
}
