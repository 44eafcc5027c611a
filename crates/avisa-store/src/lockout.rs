//! Failures counted towards a lock: the person's PIN (on `people`) and a
//! staff login (on `staff`) count the same way, in one statement, so two
//! guesses racing each other are both counted.

use avisa_core::UnixMillis;
use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError};

/// What is being counted.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    /// Wrong PINs of a person.
    Pin,
    /// Failed logins of a staff account.
    Login,
}

impl Counter {
    /// At `$1` failures, lock until `$2` and count from 0 again; `$3` is the
    /// row. Returns (failures, locked until).
    fn failed_sql(self) -> &'static str {
        match self {
            Counter::Pin => {
                "UPDATE people SET \
                 pin_locked_until = CASE WHEN pin_failures + 1 >= $1 THEN $2 ELSE pin_locked_until END, \
                 pin_failures = CASE WHEN pin_failures + 1 >= $1 THEN 0 ELSE pin_failures + 1 END \
                 WHERE id = $3 RETURNING pin_failures, pin_locked_until"
            }
            Counter::Login => {
                "UPDATE staff SET \
                 locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END, \
                 failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END \
                 WHERE id = $3 RETURNING failed_logins, locked_until"
            }
        }
    }

    fn reset_sql(self) -> &'static str {
        match self {
            Counter::Pin => {
                "UPDATE people SET pin_failures = 0, pin_locked_until = NULL WHERE id = $1"
            }
            Counter::Login => {
                "UPDATE staff SET failed_logins = 0, locked_until = NULL WHERE id = $1"
            }
        }
    }
}

impl Store {
    /// Counts a failure; at `max` locks until `lock_until` and starts
    /// counting again. Returns (failures, locked_until).
    pub(crate) async fn count_failure(
        &self,
        counter: Counter,
        id: Uuid,
        max: i32,
        lock_until: UnixMillis,
    ) -> Result<(i32, Option<UnixMillis>), StoreError> {
        let sql = counter.failed_sql();
        Ok(db_run!(self.db.writer(), |pool| {
            sqlx::query_as(sql)
                .bind(max)
                .bind(lock_until)
                .bind(id)
                .fetch_one(pool)
                .await
        })?)
    }

    /// A success: the count starts again and any lock ends.
    pub(crate) async fn reset_failures(
        &self,
        counter: Counter,
        id: Uuid,
    ) -> Result<(), StoreError> {
        let sql = counter.reset_sql();
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql).bind(id).execute(pool).await?;
        });
        Ok(())
    }
}
