//! The database: SQLite (the embedded default) or PostgreSQL, chosen from
//! the URL at start, and the one small macro that runs a statement written
//! once on whichever it is.
//!
//! SQLite and PostgreSQL share almost every statement (`$1` placeholders
//! work in both; ids are UUIDs, times `BIGINT` milliseconds, sealed values
//! bytes). Each aggregate's module writes its SQL once, inside [`db_run!`],
//! which expands the body for each backend's pool or transaction; the few
//! statements that differ ask [`Db::is_postgres`] or take the backend's
//! clause from [`Dialect`].
//!
//! SQLite: WAL journal, `synchronous=FULL` (a commit is on disk before it
//! returns), foreign keys on; writes go through a pool of one connection (no
//! lock-upgrade deadlocks, no busy retries) and reads through a separate
//! pool that WAL lets run beside it. PostgreSQL: one pool.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};

use crate::StoreError;

/// One of each backend's kind of thing: a pool, a transaction.
pub(crate) enum Either<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// A write transaction on either backend.
pub(crate) type Tx =
    Either<sqlx::Transaction<'static, Sqlite>, sqlx::Transaction<'static, Postgres>>;

/// Runs `$body` with `$x` bound to the SQLite or the PostgreSQL side of an
/// [`Either`] (a pool, `&mut` a transaction): the statement is written once
/// and compiled for both.
macro_rules! db_run {
    ($either:expr, |$x:ident| $body:expr) => {
        match $either {
            $crate::db::Either::Sqlite($x) => $body,
            $crate::db::Either::Postgres($x) => $body,
        }
    };
}
pub(crate) use db_run;

/// A connected database; see [`crate::connect`].
pub struct Db {
    pools: Pools,
}

enum Pools {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres {
        pool: PgPool,
    },
}

/// Where the two backends' SQL differs.
#[derive(Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// What lets concurrent dispatchers claim different rows: PostgreSQL
    /// skips rows another transaction locked; SQLite's claim is one
    /// statement on the single writer.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// A statement that locks a person's row for the rest of a transaction
    /// (SQLite's single writer already serialises write transactions).
    pub(crate) fn lock_person(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT id FROM people WHERE id = $1",
            Dialect::Postgres => "SELECT id FROM people WHERE id = $1 FOR UPDATE",
        }
    }
}

impl Db {
    /// Opens (creating if missing) the database at a `sqlite:` URL.
    pub(crate) async fn sqlite(url: &str) -> Result<Db, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // What is deleted is overwritten, not left in free pages.
            .pragma("secure_delete", "on")
            // 16 MiB of page cache per connection (the default is 2 MiB):
            // the outbox's indexes stay in memory under load.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory")
            // A dispatch round's claim returns up to 512 rows: with sqlx's
            // default of 50 the connection's thread stalls and wakes the
            // task again every 50 rows.
            .row_buffer_size(1024);
        // A new database gives freed pages back when the retention job
        // asks. Set by the writer alone, which connects first: on a reader
        // the pragma takes a write lock, and the writer's transaction that
        // read before it then fails at once with "database is locked".
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(
                options
                    .clone()
                    .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental),
            )
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Db {
            pools: Pools::Sqlite { writer, reader },
        })
    }

    /// Connects to a `postgres://` URL.
    pub(crate) async fn postgres(
        url: &str,
        settings: crate::PoolSettings,
    ) -> Result<Db, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let host = options.get_host().to_string();
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        let db = Db {
            pools: Pools::Postgres { pool },
        };
        // Personal data is sealed, but logins, hashes and who-did-what are
        // not: over a network they travel under TLS or not at all without
        // the operator being told.
        if db.uses_tls().await? == Some(false) && !is_local(&host) {
            tracing::warn!(
                host = %host,
                "PostgreSQL is reached over the network without TLS: add sslmode=verify-full \
                 (and sslrootcert=…) to the database URL"
            );
        }
        Ok(db)
    }

    /// Whether this connection to PostgreSQL is encrypted (None: SQLite,
    /// a file).
    pub async fn uses_tls(&self) -> Result<Option<bool>, StoreError> {
        match &self.pools {
            Pools::Sqlite { .. } => Ok(None),
            Pools::Postgres { pool } => {
                let ssl: Option<bool> =
                    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                        .fetch_optional(pool)
                        .await?;
                Ok(Some(ssl.unwrap_or(false)))
            }
        }
    }

    /// "sqlite" or "postgres".
    pub fn kind(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.pools {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// The pool writes go through (SQLite: its one connection).
    pub(crate) fn writer(&self) -> Either<&SqlitePool, &PgPool> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => Either::Sqlite(writer),
            Pools::Postgres { pool } => Either::Postgres(pool),
        }
    }

    /// The pool reads go through.
    pub(crate) fn reader(&self) -> Either<&SqlitePool, &PgPool> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => Either::Sqlite(reader),
            Pools::Postgres { pool } => Either::Postgres(pool),
        }
    }

    /// A write transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.writer() {
            // IMMEDIATE: the write lock at the start, waiting (busy
            // timeout) while another process writes (`avisa key rotate`,
            // `avisa staff add` beside a running server). A deferred
            // transaction that read first would fail at its first write
            // if that process committed meanwhile ("database is locked").
            Either::Sqlite(pool) => Either::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Either::Postgres(pool) => Either::Postgres(pool.begin().await?),
        })
    }

    /// Applies the embedded migrations that are not yet applied.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        match self.writer() {
            Either::Sqlite(pool) => crate::migrations::sqlite().run(pool).await?,
            Either::Postgres(pool) => crate::migrations::postgres().run(pool).await?,
        }
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        db_run!(self.reader(), |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A consistent copy of this SQLite database, written to `to` (a new
    /// file), while servers go on writing to it: `VACUUM INTO`, one read
    /// transaction on a reader connection, so presses are not held up. The
    /// copy holds what was committed when it began, compacted, and no WAL.
    /// `Unsupported` on PostgreSQL, whose tools are `pg_dump` and base
    /// backups.
    pub async fn copy_into(&self, to: &std::path::Path) -> Result<(), StoreError> {
        let Pools::Sqlite { reader, .. } = &self.pools else {
            return Err(StoreError::Unsupported(
                "a copy of a PostgreSQL database is pg_dump's or a base backup's",
            ));
        };
        let to = to
            .to_str()
            .ok_or(StoreError::Unsupported("a backup path that is not UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(to)
            .execute(reader)
            .await?;
        Ok(())
    }

    /// Closes every connection (flushes SQLite's WAL on the last one).
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres { pool } => pool.close().await,
        }
    }

    /// A small fact about the database itself (the key check).
    pub(crate) async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = "SELECT value FROM meta WHERE key = $1";
        Ok(db_run!(self.reader(), |pool| {
            sqlx::query_scalar(sql).bind(key).fetch_optional(pool).await
        })?)
    }

    /// Inserts unless the key exists; true when inserted.
    pub(crate) async fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let sql = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
        let done = db_run!(self.writer(), |pool| {
            sqlx::query(sql)
                .bind(key)
                .bind(value)
                .execute(pool)
                .await
                .map(|d| d.rows_affected())
        })?;
        Ok(done == 1)
    }
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        db_run!(self, |tx| tx.commit().await)?;
        Ok(())
    }
}

/// A host on this machine: loopback, or a Unix socket's directory.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Empties SQLite's WAL into the main file and truncates it, trying again
/// while readers hold it (up to five seconds): the WAL keeps older images
/// of pages, deleted values among them. False when readers kept it.
pub(crate) async fn truncate_wal(pool: &sqlx::SqlitePool) -> Result<bool, StoreError> {
    for _ in 0..50 {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await?;
        if busy == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// Waits (up to ten seconds; the server's transactions last milliseconds)
/// until every transaction in the database began after this call: VACUUM
/// keeps a dead row any running transaction might still see, so a rewrite
/// meant to leave a deleted value in no file waits for this first. False
/// when older transactions kept running.
pub(crate) async fn older_transactions_ended(pool: &PgPool) -> Result<bool, StoreError> {
    let after: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(pool)
        .await?;
    let older = "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_xmin IS NOT NULL \
                 AND age(backend_xmin) >= age(($1 % 4294967296)::text::xid)";
    for _ in 0..200 {
        let running: i64 = sqlx::query_scalar(older)
            .bind(after)
            .fetch_one(pool)
            .await?;
        if running == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_hosts_need_no_tls_warning() {
        for local in [
            "localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(super::is_local(local), "{local}");
        }
        for remote in ["db.example.org", "10.0.0.5", "192.168.1.20"] {
            assert!(!super::is_local(remote), "{remote}");
        }
    }
}
