//! The instances on one database, and who holds which message.
//!
//! Each instance beats (`instances.beat_at`) every fraction of a second;
//! a message being sent is held by the instance that claimed it (or whose
//! writer leased it, `outbox.holder`). The sweep gives back to the queue a
//! message whose lease ran out, and — within seconds, not at the end of a
//! 30 s lease — one whose holder stopped beating (killed) or left (stopped
//! gracefully). Either way the message is marked in doubt: it may have
//! reached the gateway, which is asked before it is sent again.
//!
//! The live count also splits each gateway's rate between the instances,
//! so the operator's contract with the provider holds however many run.

use avisa_core::UnixMillis;

use crate::db::db_run;
use crate::{Store, StoreError};

/// An instance silent for an hour is forgotten (its row only).
const FORGET_AFTER_MS: UnixMillis = 3_600_000;

impl Store {
    /// This process's name among the instances.
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// Records that this instance is alive at `now`; returns how many
    /// instances (this one included) beat at `live_after` or later.
    pub async fn beat(&self, now: UnixMillis, live_after: UnixMillis) -> Result<u32, StoreError> {
        let upsert = "INSERT INTO instances (id, beat_at) VALUES ($1, $2) \
                      ON CONFLICT (id) DO UPDATE SET beat_at = $2";
        let forget = "DELETE FROM instances WHERE beat_at < $1";
        let count = "SELECT COUNT(*) FROM instances WHERE beat_at >= $1";
        let live: i64 = db_run!(self.db.writer(), |pool| {
            sqlx::query(upsert)
                .bind(&*self.instance)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query(forget)
                .bind(now - FORGET_AFTER_MS)
                .execute(pool)
                .await?;
            sqlx::query_scalar(count)
                .bind(live_after)
                .fetch_one(pool)
                .await?
        });
        Ok(u32::try_from(live).unwrap_or(u32::MAX).max(1))
    }

    /// This instance stops (a graceful stop, after it released what it
    /// held): whatever it still holds is taken by the others at once.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let sql = "DELETE FROM instances WHERE id = $1";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&*self.instance)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Returns to the queue the messages whose lease ran out and, with
    /// `dead_before`, those held by another instance that has not beaten
    /// since then (or left). Each is marked in doubt from when it was
    /// taken. Returns how many.
    pub async fn reclaim_expired_leases(
        &self,
        now: UnixMillis,
        dead_before: Option<UnixMillis>,
    ) -> Result<u64, StoreError> {
        const SET: &str = "UPDATE outbox SET status = 'queued', lease_until = NULL, holder = NULL, \
             in_doubt_at = COALESCE(in_doubt_at, updated_at), updated_at = $1 \
             WHERE status = 'sending' AND (lease_until <= $1";
        let n = match dead_before {
            None => {
                let sql = format!("{SET})");
                db_run!(self.db.writer(), |pool| {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .execute(pool)
                        .await?
                        .rows_affected()
                })
            }
            Some(dead_before) => {
                let sql = format!(
                    "{SET} OR (holder IS NOT NULL AND holder <> $3 AND NOT EXISTS ( \
                       SELECT 1 FROM instances i WHERE i.id = outbox.holder AND i.beat_at >= $2)))"
                );
                db_run!(self.db.writer(), |pool| {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(dead_before)
                        .bind(&*self.instance)
                        .execute(pool)
                        .await?
                        .rows_affected()
                })
            }
        };
        Ok(n)
    }
}
