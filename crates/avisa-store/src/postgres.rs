//! The PostgreSQL backend: for deployments that outgrow one machine.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
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

pub struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    /// Connects to a `postgres://` URL.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(PostgresBackend { pool })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn migrator(&self) -> Migrator {
        crate::migrations::postgres()
    }
}

shared_backend!(
    PostgresBackend,
    sqlx::Postgres,
    PgRow,
    "postgres",
    "SELECT id FROM people WHERE id = $1 FOR UPDATE",
    "FOR UPDATE SKIP LOCKED"
);

console_backend!(PostgresBackend, sqlx::Postgres, PgRow);
