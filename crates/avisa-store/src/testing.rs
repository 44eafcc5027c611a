//! Helpers for tests (this crate's and the server's): a fresh database per
//! test on either backend.
//!
//! PostgreSQL tests use `AVISA_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`) to create a database of their
//! own. When it is unreachable they are skipped with a message, except under
//! `CI=true`, where that is a failure: CI must never pass by skipping.

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
    Some(format!("{base}/{name}"))
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
