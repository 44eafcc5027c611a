//! Retention: what is wiped or deleted once it has served (the periodic job
//! is `avisa-server/src/retention.rs`). Each statement is idempotent, so two
//! instances running it at once remove each thing once; counts say what this
//! run changed.
//!
//! SQLite overwrites what it frees (`secure_delete`, set at connect), gives
//! free pages back (`incremental_vacuum`, for databases created with
//! `auto_vacuum = INCREMENTAL`) and truncates its WAL after a run that
//! changed something, so old copies of the rows do not linger in the files.
//! PostgreSQL leaves dead row versions to VACUUM (autovacuum by default);
//! until then a copy of its files may hold them, as may any backup — which
//! is why every such value is sealed, a person's with their own key, which
//! "delete my data" destroys (see [`Store::scrub`]).

use avisa_core::UnixMillis;

use crate::db::{Either, db_run};
use crate::{Store, StoreError};

/// Everything older than these goes (times in milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// Messages final before this lose their text.
    pub bodies: UnixMillis,
    /// Cases resolved before this lose their trail.
    pub trail: UnixMillis,
    /// Cases resolved before this lose their personal fields.
    pub personal: UnixMillis,
    /// Timers that ended without an alert, with a deadline before this,
    /// are deleted.
    pub checkins: UnixMillis,
}

/// What one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub message_bodies: u64,
    pub trail_points: u64,
    /// Messages, notes and case fields wiped of who and where.
    pub personal_fields: u64,
    pub checkins: u64,
    /// Codes and replies that belong to no alert, deleted whole once their
    /// text had gone (their number was sealed with the root key, not a
    /// person's, so only deleting them makes it unreadable).
    pub stray_messages: u64,
}

impl Removed {
    pub fn any(&self) -> bool {
        *self != Removed::default()
    }
}

const FINAL: &str = "('sent', 'delivered', 'failed', 'expired', 'withdrawn')";
const RESOLVED_BEFORE: &str =
    "SELECT id FROM alerts WHERE case_state = 'resolved' AND resolved_at < $1";

impl Store {
    /// Applies the retention cutoffs once.
    pub async fn apply_retention(&self, c: &Cutoffs) -> Result<Removed, StoreError> {
        // Statements that take the cutoff ($1), and those that also set a
        // sealed column that cannot be NULL to no bytes ($2).
        let run = |sql: String, at: UnixMillis| async move {
            Ok::<u64, StoreError>(db_run!(self.db.writer(), |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(at)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }))
        };
        let wipe = |sql: String, at: UnixMillis| async move {
            let empty: &[u8] = &[];
            Ok::<u64, StoreError>(db_run!(self.db.writer(), |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(at)
                    .bind(empty)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }))
        };
        let mut removed = Removed {
            message_bodies: wipe(
                format!(
                    "UPDATE outbox SET body_enc = $2 WHERE status IN {FINAL} \
                     AND updated_at < $1 AND length(body_enc) > 0"
                ),
                c.bodies,
            )
            .await?,
            trail_points: run(
                format!("DELETE FROM alert_locations WHERE alert_id IN ({RESOLVED_BEFORE})"),
                c.trail,
            )
            .await?,
            personal_fields: wipe(
                format!(
                    "UPDATE outbox SET name_enc = NULL, to_enc = $2 \
                     WHERE alert_id IN ({RESOLVED_BEFORE}) AND length(to_enc) > 0"
                ),
                c.personal,
            )
            .await?,
            stray_messages: run(
                format!(
                    "DELETE FROM outbox WHERE alert_id IS NULL AND purpose IN ('code', 'reply') \
                     AND status IN {FINAL} AND updated_at < $1"
                ),
                c.bodies,
            )
            .await?,
            checkins: run(
                "DELETE FROM checkins WHERE state IN ('checked_out', 'cancelled') \
                 AND deadline < $1"
                    .into(),
                c.checkins,
            )
            .await?,
        };
        for sql in [
            format!(
                "UPDATE alerts SET caller_enc = NULL, outcome_detail_enc = NULL \
                 WHERE id IN ({RESOLVED_BEFORE}) \
                 AND (caller_enc IS NOT NULL OR outcome_detail_enc IS NOT NULL)"
            ),
            format!(
                "UPDATE alert_events SET detail_enc = NULL \
                 WHERE alert_id IN ({RESOLVED_BEFORE}) AND detail_enc IS NOT NULL"
            ),
            format!(
                "UPDATE checkins SET place_enc = NULL, note_enc = NULL, location_enc = NULL \
                 WHERE alert_id IN ({RESOLVED_BEFORE}) \
                 AND (place_enc IS NOT NULL OR note_enc IS NOT NULL OR location_enc IS NOT NULL)"
            ),
        ] {
            removed.personal_fields += run(sql, c.personal).await?;
        }
        if removed.any() {
            self.scrub().await?;
        }
        Ok(removed)
    }

    /// Clears what the database files keep of deleted rows, where the
    /// database lets us. SQLite: free pages (already overwritten, by
    /// `secure_delete`) go back to the file system, and the WAL, which
    /// holds older images of the pages, is emptied (waiting out readers).
    /// PostgreSQL: once every transaction that could still see a deleted
    /// key has ended, the table of person keys is rewritten into a new file
    /// (`VACUUM FULL`, a small table), so a deleted person's wrapped key is
    /// in no table file (a transaction still running kept it in the new
    /// file: CI saw it); other tables' dead rows wait for VACUUM, and they
    /// hold only values no key opens any more. PostgreSQL's WAL is another
    /// matter (README).
    pub async fn scrub(&self) -> Result<(), StoreError> {
        let clear = match self.db.writer() {
            Either::Sqlite(pool) => {
                sqlx::query("PRAGMA incremental_vacuum")
                    .execute(pool)
                    .await?;
                crate::db::truncate_wal(pool).await?
            }
            Either::Postgres(pool) => {
                let clear = crate::db::older_transactions_ended(pool).await?;
                sqlx::query("VACUUM FULL person_keys").execute(pool).await?;
                clear
            }
        };
        if !clear {
            tracing::warn!(
                "transactions older than a deletion kept running: what it deleted may stay in the database files until the next scrub"
            );
        }
        Ok(())
    }

    /// When a resolved case loses its trail and its personal fields (None
    /// while it is open).
    pub async fn erased_at(
        &self,
        alert_id: uuid::Uuid,
        trail_after: i64,
        personal_after: i64,
    ) -> Result<Option<(UnixMillis, UnixMillis)>, StoreError> {
        let sql = "SELECT resolved_at FROM alerts WHERE id = $1 AND case_state = 'resolved'";
        let resolved: Option<Option<UnixMillis>> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(alert_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(resolved
            .flatten()
            .map(|at| (at + trail_after, at + personal_after)))
    }
}
