//! Devices: a phone app installation, its bearer token (kept as a hash) and
//! the one-time code that verifies its phone number.

use avisa_core::{Language, PhoneNumber, UnixMillis};
use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError, aad};

/// Verification attempts a one-time code allows before it is burnt.
pub const MAX_CODE_ATTEMPTS: i32 = 5;

/// A phone app installation.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: Uuid,
    pub person_id: Option<Uuid>,
    pub language: Language,
    pub verified_at: Option<UnixMillis>,
}

/// The result of entering a one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified {
        person_id: Uuid,
    },
    /// Wrong code; this many attempts remain (0: the code is burnt).
    Wrong {
        attempts_left: i32,
    },
    /// No code to check: never sent, already used, expired or burnt.
    NoCode,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct DeviceRow {
    id: Uuid,
    phone_index: Vec<u8>,
    phone_enc: Vec<u8>,
    language: Language,
    person_id: Option<Uuid>,
    code_hash: Option<Vec<u8>>,
    code_attempts: i32,
    verified_at: Option<UnixMillis>,
}

impl From<DeviceRow> for Device {
    fn from(row: DeviceRow) -> Self {
        Device {
            id: row.id,
            person_id: row.person_id,
            language: row.language,
            verified_at: row.verified_at,
        }
    }
}

fn code_domain(device_id: Uuid) -> String {
    format!("code:{device_id}")
}

impl Store {
    /// Registers a device for a phone with a one-time code (kept only as a
    /// keyed hash) and the hash of its bearer token.
    pub async fn register_device(
        &self,
        phone: &PhoneNumber,
        language: Language,
        token_hash: Vec<u8>,
        code: &str,
        code_expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<Device, StoreError> {
        let id = Uuid::now_v7();
        let phone_enc = self
            .vault
            .seal_str(&aad("devices.phone", id), phone.as_str())?;
        let code_hash = self.vault.blind_index(&code_domain(id), code.as_bytes());
        let sql = "INSERT INTO devices (id, phone_index, phone_enc, language, token_hash, \
                   code_hash, code_expires_at, code_attempts, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(id)
                .bind(self.phone_index(phone))
                .bind(&phone_enc)
                .bind(language)
                .bind(&token_hash)
                .bind(&code_hash)
                .bind(code_expires_at)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(Device {
            id,
            person_id: None,
            language,
            verified_at: None,
        })
    }

    pub async fn device_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<Device>, StoreError> {
        let sql = "SELECT * FROM devices WHERE token_hash = $1";
        let row: Option<DeviceRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(Device::from))
    }

    /// Removes one device (its token stops working); the person and their
    /// alerts stay. Used for "delete my data" forced with the duress PIN.
    pub async fn forget_device(&self, device_id: Uuid) -> Result<(), StoreError> {
        let sql = "DELETE FROM devices WHERE id = $1";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql).bind(device_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Checks a one-time code, consuming one attempt.
    pub async fn verify_device(
        &self,
        device_id: Uuid,
        code: &str,
        now: UnixMillis,
    ) -> Result<VerifyOutcome, StoreError> {
        // One statement, so two guesses racing each other can never both
        // use the last attempt.
        let sql = "UPDATE devices SET code_attempts = code_attempts + 1 \
                   WHERE id = $1 AND code_hash IS NOT NULL AND code_expires_at > $2 \
                     AND code_attempts < $3 RETURNING *";
        let row: Option<DeviceRow> = db_run!(self.db.writer(), |pool| {
            sqlx::query_as(sql)
                .bind(device_id)
                .bind(now)
                .bind(MAX_CODE_ATTEMPTS)
                .fetch_optional(pool)
                .await
        })?;
        let Some(row) = row else {
            return Ok(VerifyOutcome::NoCode);
        };
        let stored = row.code_hash.as_deref().unwrap_or_default();
        if !self
            .vault
            .blind_index_matches(&code_domain(device_id), code.as_bytes(), stored)
        {
            return Ok(VerifyOutcome::Wrong {
                attempts_left: (MAX_CODE_ATTEMPTS - row.code_attempts).max(0),
            });
        }
        let phone = self
            .load_keys([row.phone_enc.as_slice()])
            .await?
            .open_str(&aad("devices.phone", device_id), &row.phone_enc)?;
        let person_id = self
            .verified_person(device_id, &row.phone_index, &phone, row.language, now)
            .await?;
        Ok(VerifyOutcome::Verified { person_id })
    }
}
