//! Failures counted towards a lock or a delay: a person's wrong PINs (on
//! `people`, counted in one statement so two guesses racing each other are
//! both counted) and failed console logins per client address (on
//! `login_throttle`, the address only as a blind index).

use std::net::IpAddr;

use avisa_core::UnixMillis;
use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError};

/// What [`Store::pin_attempt`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinAttempt {
    /// The check may run: it is attempt number `attempt` of the window;
    /// `locks_until` is set when this was the last one allowed (a wrong PIN
    /// now leaves the lock in place).
    Taken {
        attempt: i32,
        locks_until: Option<UnixMillis>,
    },
    /// Locked: nothing may be checked until `until`.
    Locked { until: UnixMillis },
}

/// The failed logins from one address: how many since the count last
/// started again, and when the last one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginFailures {
    pub failures: i64,
    pub last_at: UnixMillis,
}

impl Store {
    /// Takes one attempt at the person's PIN **before** it is checked, in
    /// one statement, so however many checks arrive at once (on one
    /// instance or several) at most `max` are ever verified per lockout:
    /// the attempt that reaches `max` sets the lock (until `lock_until`) as
    /// it is taken, and every later one finds it. A lock that has ended
    /// starts the count again. A right PIN gives its attempt back with
    /// [`Store::pin_reset`]; a wrong one is already counted.
    pub async fn pin_attempt(
        &self,
        person_id: Uuid,
        max: i32,
        now: UnixMillis,
        lock_until: UnixMillis,
    ) -> Result<PinAttempt, StoreError> {
        // In SET every right-hand side reads the row as it was.
        let sql = "UPDATE people SET \
                   pin_failures = CASE WHEN pin_locked_until IS NOT NULL THEN 1 \
                                       ELSE pin_failures + 1 END, \
                   pin_locked_until = CASE WHEN (CASE WHEN pin_locked_until IS NOT NULL THEN 1 \
                                                      ELSE pin_failures + 1 END) >= $1 \
                                           THEN $2 ELSE NULL END \
                   WHERE id = $3 AND (pin_locked_until IS NULL OR pin_locked_until <= $4) \
                   RETURNING pin_failures, pin_locked_until";
        let taken: Option<(i32, Option<UnixMillis>)> = db_run!(self.db.writer(), |pool| {
            sqlx::query_as(sql)
                .bind(max)
                .bind(lock_until)
                .bind(person_id)
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        if let Some((attempt, last_until)) = taken {
            return Ok(PinAttempt::Taken {
                attempt,
                locks_until: last_until,
            });
        }
        match self.pin_state(person_id).await? {
            (_, Some(until)) => Ok(PinAttempt::Locked { until }),
            // The lock ended between the two statements: as locked for an
            // instant, never as a free check.
            (_, None) => Ok(PinAttempt::Locked { until: now + 1 }),
        }
    }

    /// A right PIN: the count starts again and any lock ends.
    pub async fn pin_reset(&self, person_id: Uuid) -> Result<(), StoreError> {
        let sql = "UPDATE people SET pin_failures = 0, pin_locked_until = NULL WHERE id = $1";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql).bind(person_id).execute(pool).await?;
        });
        Ok(())
    }

    fn login_key(&self, addr: IpAddr) -> String {
        let bytes = match addr {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let index = self.vault.blind_index("login", &bytes);
        format!(
            "login:{}",
            index.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    /// The failed logins counted for an address (zero when none).
    pub async fn login_failures(&self, addr: IpAddr) -> Result<LoginFailures, StoreError> {
        let key = self.login_key(addr);
        let sql = "SELECT failures, last_at FROM login_throttle WHERE key = $1";
        let row: Option<(i64, UnixMillis)> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(&key).fetch_optional(pool).await
        })?;
        Ok(row
            .map(|(failures, last_at)| LoginFailures { failures, last_at })
            .unwrap_or_default())
    }

    /// Counts a failed login from an address at `now`, in one statement; a
    /// count whose last failure was before `forget_before` starts again.
    /// Returns the count with this one.
    pub async fn login_failed(
        &self,
        addr: IpAddr,
        now: UnixMillis,
        forget_before: UnixMillis,
    ) -> Result<i64, StoreError> {
        let key = self.login_key(addr);
        let sql = "INSERT INTO login_throttle (key, failures, last_at) VALUES ($1, 1, $2) \
                   ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN login_throttle.last_at < $3 THEN 1 \
                                   ELSE login_throttle.failures + 1 END, \
                   last_at = $2 \
                   RETURNING failures";
        Ok(db_run!(self.db.writer(), |pool| {
            sqlx::query_scalar(sql)
                .bind(&key)
                .bind(now)
                .bind(forget_before)
                .fetch_one(pool)
                .await
        })?)
    }

    /// A successful login from an address: its count starts again.
    pub async fn login_succeeded(&self, addr: IpAddr) -> Result<(), StoreError> {
        let key = self.login_key(addr);
        db_run!(self.db.writer(), |pool| {
            sqlx::query("DELETE FROM login_throttle WHERE key = $1")
                .bind(&key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets the counts whose last failure was before `before`.
    pub async fn purge_login_failures(&self, before: UnixMillis) -> Result<u64, StoreError> {
        Ok(db_run!(self.db.writer(), |pool| {
            sqlx::query("DELETE FROM login_throttle WHERE last_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
