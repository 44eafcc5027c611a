//! The storage seam: what a database backend must do, in sealed rows.
//!
//! Backends never see plain personal data: [`crate::Store`] seals before it
//! writes and opens after it reads, so the SQLite and PostgreSQL code only
//! moves bytes and indexes.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreError;
use avisa_core::UnixMillis;

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub id: Uuid,
    pub phone_index: Vec<u8>,
    pub phone_enc: Vec<u8>,
    pub language: String,
    pub token_hash: Vec<u8>,
    pub person_id: Option<Uuid>,
    pub code_hash: Option<Vec<u8>>,
    pub code_expires_at: Option<UnixMillis>,
    pub code_attempts: i32,
    pub verified_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct PersonRow {
    pub id: Uuid,
    pub phone_index: Vec<u8>,
    pub phone_enc: Vec<u8>,
    pub name_enc: Option<Vec<u8>>,
    pub home_state_enc: Option<Vec<u8>>,
    pub home_county_enc: Option<Vec<u8>>,
    pub keyword_enc: Option<Vec<u8>>,
    pub language: String,
    pub pin_hash: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct ContactRow {
    pub id: Uuid,
    pub person_id: Uuid,
    pub name_enc: Vec<u8>,
    pub phone_enc: Vec<u8>,
    pub message_enc: Vec<u8>,
    pub language: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A database backend (SQLite or PostgreSQL).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;
    /// Applies the embedded migrations that are not yet applied.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes every connection (flushes SQLite's WAL on the last one).
    async fn close(&self);

    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Inserts unless the key exists; true when inserted.
    async fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;

    async fn device_insert(&self, row: &DeviceRow) -> Result<(), StoreError>;
    async fn device_by_token(&self, token_hash: &[u8]) -> Result<Option<DeviceRow>, StoreError>;
    /// Devices registered for a phone since a time (rate limiting code SMS).
    async fn devices_registered_since(
        &self,
        phone_index: &[u8],
        since: UnixMillis,
    ) -> Result<i64, StoreError>;
    /// Consumes one verification attempt atomically: only while a code is
    /// set, unexpired and under `max_attempts`. Returns the row after the
    /// increment, or None when no attempt was left to take.
    async fn device_take_attempt(
        &self,
        id: Uuid,
        now: UnixMillis,
        max_attempts: i32,
    ) -> Result<Option<DeviceRow>, StoreError>;
    /// Marks the device verified and links it to the person with its phone,
    /// creating `new_person` if no person has that phone yet. Other
    /// unverified devices of the same phone are removed. Returns the person id.
    async fn device_verify(
        &self,
        device_id: Uuid,
        new_person: &PersonRow,
        now: UnixMillis,
    ) -> Result<Uuid, StoreError>;

    async fn person_get(&self, id: Uuid) -> Result<Option<PersonRow>, StoreError>;
    /// Writes the profile columns of the row (not phone or creation time).
    async fn person_update_profile(&self, row: &PersonRow) -> Result<bool, StoreError>;
    /// Deletes the person with every device and contact.
    async fn person_delete(&self, id: Uuid) -> Result<bool, StoreError>;

    async fn contacts_list(&self, person_id: Uuid) -> Result<Vec<ContactRow>, StoreError>;
    async fn contact_get(
        &self,
        person_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ContactRow>, StoreError>;
    /// Inserts unless the person already has `max` contacts
    /// ([`StoreError::LimitReached`]).
    async fn contact_insert(&self, row: &ContactRow, max: i64) -> Result<(), StoreError>;
    async fn contact_update(&self, row: &ContactRow) -> Result<bool, StoreError>;
    async fn contact_delete(&self, person_id: Uuid, id: Uuid) -> Result<bool, StoreError>;
}
