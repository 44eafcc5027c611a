//! The SQLite backend: the embedded default.
//!
//! WAL journal, `synchronous=FULL` (a commit is on disk before it returns),
//! foreign keys on. SQLite allows one writer at a time, so writes go through
//! a pool of one connection (no lock-upgrade deadlocks, no busy retries) and
//! reads through a separate pool that WAL lets run beside it.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use uuid::Uuid;

use crate::StoreError;
use crate::backend::{
    AlertInsert, AlertRow, Backend, ContactRow, DeviceRow, Inserted, LocationRow, OutboxRow,
    OutboxUpdate, PersonRow, PressRow,
};
use crate::console_backend::{
    AuditRow, CaseChange, CaseRow, ConsoleBackend, EventRow, QueueFilter, QueueRow, SessionRow,
    StaffRow,
};
use crate::sql::{
    ALERT_COLUMNS, CONTACT_COLUMNS, DEVICE_AND_PERSON_SQL, DEVICE_COLUMNS, KEY_AND_RECENT_SQL,
    LOCATION_COLUMNS, OUTBOX_CHUNK, OUTBOX_COLUMNS, PERSON_COLUMNS, PERSON_READ_COLUMNS,
    PRESS_LOOKUP_SQL, q, shared_backend,
};
use crate::sql_console::{
    ALERT_COLUMNS_A, AUDIT_COLUMNS, CASE_COLUMNS, EVENT_COLUMNS, SESSION_COLUMNS, STAFF_COLUMNS,
    console_backend,
};
use avisa_core::UnixMillis;

pub struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database at a `sqlite:` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 16 MiB of page cache per connection (the default is 2 MiB):
            // the outbox's indexes stay in memory under load.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory")
            // A dispatch round's claim returns up to 512 rows: with sqlx's
            // default of 50 the connection's thread stalls and wakes the
            // task again every 50 rows.
            .row_buffer_size(1024);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqliteBackend { writer, reader })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn migrator(&self) -> Migrator {
        crate::migrations::sqlite()
    }
}

shared_backend!(
    SqliteBackend,
    sqlx::Sqlite,
    SqliteRow,
    "sqlite",
    // The single writer connection already serialises write transactions.
    "SELECT id FROM people WHERE id = $1",
    ""
);

console_backend!(SqliteBackend, sqlx::Sqlite, SqliteRow);
