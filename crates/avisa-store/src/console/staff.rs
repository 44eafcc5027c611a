//! Staff accounts (argon2id password hashes) and their console sessions
//! (tokens kept only as hashes). Failed logins are throttled per client
//! address ([`crate::lockout`]), never by locking the account.

use avisa_core::{Role, UnixMillis};
use sqlx::FromRow;
use uuid::Uuid;

use super::{Session, Staff, StaffLogin};
use crate::db::db_run;
use crate::{Store, StoreError};

#[derive(Debug, Clone, FromRow)]
struct StaffRow {
    id: Uuid,
    username: String,
    password_hash: String,
    consulate_id: String,
    role: Role,
    disabled: bool,
}

impl From<&StaffRow> for Staff {
    fn from(r: &StaffRow) -> Self {
        Staff {
            id: r.id,
            username: r.username.clone(),
            consulate_id: r.consulate_id.clone(),
            role: r.role,
            disabled: r.disabled,
        }
    }
}

#[derive(Debug, Clone, FromRow)]
struct SessionRow {
    staff_id: Uuid,
    csrf_token: String,
    created_at: UnixMillis,
    last_seen_at: UnixMillis,
    expires_at: UnixMillis,
}

impl Store {
    /// Adds an account; [`StoreError::Conflict`] if the username is taken.
    pub async fn add_staff(
        &self,
        username: &str,
        password_hash: &str,
        consulate_id: &str,
        role: Role,
        now: UnixMillis,
    ) -> Result<Staff, StoreError> {
        let id = Uuid::now_v7();
        let sql = "INSERT INTO staff (id, username, password_hash, consulate_id, role, disabled, \
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                   ON CONFLICT (username) DO NOTHING";
        let inserted = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(username)
                .bind(password_hash)
                .bind(consulate_id)
                .bind(role)
                .bind(false)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(Staff {
            id,
            username: username.to_string(),
            consulate_id: consulate_id.to_string(),
            role,
            disabled: false,
        })
    }

    async fn staff_row(&self, key: StaffKey<'_>) -> Result<Option<StaffRow>, StoreError> {
        let sql = match key {
            StaffKey::Id(_) => "SELECT * FROM staff WHERE id = $1",
            StaffKey::Username(_) => "SELECT * FROM staff WHERE username = $1",
        };
        Ok(db_run!(self.db.reader(), |pool| {
            let query = sqlx::query_as(sql);
            let query = match key {
                StaffKey::Id(id) => query.bind(id),
                StaffKey::Username(u) => query.bind(u),
            };
            query.fetch_optional(pool).await?
        }))
    }

    /// The account and its password hash, for a login.
    pub async fn staff_login(&self, username: &str) -> Result<Option<StaffLogin>, StoreError> {
        Ok(self
            .staff_row(StaffKey::Username(username))
            .await?
            .map(|r| StaffLogin {
                staff: Staff::from(&r),
                password_hash: r.password_hash,
            }))
    }

    pub async fn staff_by_username(&self, username: &str) -> Result<Option<Staff>, StoreError> {
        Ok(self
            .staff_row(StaffKey::Username(username))
            .await?
            .as_ref()
            .map(Staff::from))
    }

    pub async fn staff_by_id(&self, id: Uuid) -> Result<Option<Staff>, StoreError> {
        Ok(self
            .staff_row(StaffKey::Id(id))
            .await?
            .as_ref()
            .map(Staff::from))
    }

    pub async fn staff_all(&self) -> Result<Vec<Staff>, StoreError> {
        let sql = "SELECT * FROM staff ORDER BY consulate_id, username";
        let rows: Vec<StaffRow> = db_run!(self.db.reader(), |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await)?;
        Ok(rows.iter().map(Staff::from).collect())
    }

    /// Sets a new password and ends every session of that staff member.
    pub async fn set_staff_password(
        &self,
        id: Uuid,
        hash: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE staff SET password_hash = $1, updated_at = $2 WHERE id = $3";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(hash)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        self.end_sessions_of(id).await
    }

    /// Disables (or enables) an account; disabling ends its sessions.
    pub async fn set_staff_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE staff SET disabled = $1, updated_at = $2 WHERE id = $3";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(disabled)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        if disabled {
            self.end_sessions_of(id).await?;
        }
        Ok(())
    }

    // ---- sessions ------------------------------------------------------------

    pub async fn create_session(
        &self,
        staff_id: Uuid,
        token_hash: Vec<u8>,
        csrf_token: String,
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO staff_sessions (token_hash, staff_id, csrf_token, created_at, \
                   last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&token_hash)
                .bind(staff_id)
                .bind(&csrf_token)
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn session(&self, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        let sql = "SELECT * FROM staff_sessions WHERE token_hash = $1";
        let row: Option<SessionRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|r| Session {
            staff_id: r.staff_id,
            csrf_token: r.csrf_token,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
        }))
    }

    /// Whether a session still stands at `now`: not logged out or ended by
    /// a password reset, within its idle and maximum times (`created_after`
    /// = now − the maximum), its account not disabled. Live streams ask
    /// this every second.
    pub async fn session_stands(
        &self,
        token_hash: &[u8],
        now: UnixMillis,
        created_after: UnixMillis,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM staff_sessions s JOIN staff t ON t.id = s.staff_id \
                   WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.created_at > $3 \
                   AND t.disabled = $4";
        let n: i64 = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(token_hash)
                .bind(now)
                .bind(created_after)
                .bind(false)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    /// Slides a session's idle expiry.
    pub async fn touch_session(
        &self,
        token_hash: &[u8],
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let sql =
            "UPDATE staff_sessions SET last_seen_at = $1, expires_at = $2 WHERE token_hash = $3";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(now)
                .bind(expires_at)
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn end_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        let sql = "DELETE FROM staff_sessions WHERE token_hash = $1";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql).bind(token_hash).execute(pool).await?;
        });
        Ok(())
    }

    async fn end_sessions_of(&self, staff_id: Uuid) -> Result<(), StoreError> {
        let sql = "DELETE FROM staff_sessions WHERE staff_id = $1";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql).bind(staff_id).execute(pool).await?;
        });
        Ok(())
    }
}

/// How [`Store::staff_row`] finds an account.
#[derive(Clone, Copy)]
enum StaffKey<'a> {
    Id(Uuid),
    Username(&'a str),
}
