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
    /// Bumped by the database on every change to the person's contacts
    /// (read only; what is written here is ignored).
    pub contacts_version: i64,
}

/// What a press reads before it writes: the device, its person, the alert
/// the press's idempotency key already made, and the person's alerts since
/// the start of the rate-limit window.
#[derive(Debug, Clone)]
pub struct PressRow {
    pub device: DeviceRow,
    pub person: Option<PersonRow>,
    pub existing: Option<Uuid>,
    pub recent: i64,
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

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub id: Uuid,
    pub person_id: Uuid,
    pub device_id: Option<Uuid>,
    pub idempotency_key: String,
    pub source: String,
    pub practice: bool,
    pub state: String,
    pub consulate_id: Option<String>,
    pub coverage: String,
    pub created_at: UnixMillis,
    pub cancelled_at: Option<UnixMillis>,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct LocationRow {
    pub id: Uuid,
    pub alert_id: Uuid,
    pub location_enc: Vec<u8>,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: Uuid,
    pub alert_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub kind: String,
    pub purpose: String,
    pub contact_id: Option<Uuid>,
    pub name_enc: Option<Vec<u8>>,
    pub to_enc: Vec<u8>,
    pub body_enc: Vec<u8>,
    pub language: String,
    pub rank: i32,
    pub status: String,
    pub reason: Option<String>,
    pub attempts: i32,
    pub gateway_index: i32,
    pub permanent_failures: i32,
    pub gateway: Option<String>,
    pub provider_id: Option<String>,
    pub next_attempt_at: UnixMillis,
    pub lease_until: Option<UnixMillis>,
    pub expires_at: UnixMillis,
    pub created_at: UnixMillis,
    pub sent_at: Option<UnixMillis>,
    pub updated_at: UnixMillis,
}

/// An alert with everything its one transaction writes.
#[derive(Debug, Clone)]
pub struct AlertInsert {
    pub alert: AlertRow,
    pub location: Option<LocationRow>,
    pub outbox: Vec<OutboxRow>,
}

impl AlertInsert {
    /// Writes the outbox rows already claimed until `lease_until`, as
    /// [`crate::Store::claim`] would leave them: for a dispatcher in the same
    /// process that takes their text from memory instead of claiming them.
    /// If that process dies first, the lease runs out and a sweep puts them
    /// back in the queue, like any claimed row.
    pub fn lease_outbox(&mut self, lease_until: UnixMillis) {
        for row in &mut self.outbox {
            row.status = "sending".into();
            row.attempts = 1;
            row.lease_until = Some(lease_until);
        }
    }
}

/// What happened to one alert of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Created(Uuid),
    /// The idempotency key was already used: the first alert's id.
    Existing(Uuid),
}

/// A change to an outbox row after a send attempt. Each applies only from
/// the states it names, so a late update never undoes a receipt.
#[derive(Debug, Clone)]
pub enum OutboxUpdate {
    /// The gateway took it (from `sending`; a receipt that came first wins).
    Sent {
        id: Uuid,
        gateway: String,
        provider_id: String,
        at: UnixMillis,
    },
    /// Try again later, maybe on another gateway (from `sending`).
    Retry {
        id: Uuid,
        next_attempt_at: UnixMillis,
        gateway_index: i32,
        permanent_failures: i32,
        reason: String,
        at: UnixMillis,
    },
    /// Given up (from `sending`).
    Failed {
        id: Uuid,
        reason: String,
        at: UnixMillis,
    },
    /// Its validity ran out before it could go (from `queued` or `sending`).
    Expired { id: Uuid, at: UnixMillis },
    /// No longer wanted (from `queued` or `sending`).
    Withdrawn {
        id: Uuid,
        reason: String,
        at: UnixMillis,
    },
    /// Back to the queue without a verdict (from `sending`).
    Release {
        id: Uuid,
        next_attempt_at: UnixMillis,
        at: UnixMillis,
    },
}

/// A database backend (SQLite or PostgreSQL).
#[async_trait]
pub trait Backend: crate::console_backend::ConsoleBackend + Send + Sync + 'static {
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
    /// The device with this token and, when verified, its person: one round
    /// trip for what every phone request needs first.
    async fn device_and_person_by_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(DeviceRow, Option<PersonRow>)>, StoreError>;
    /// [`Backend::device_and_person_by_token`] with what a press needs of the
    /// person's alerts (the alert `key` made, the count created since
    /// `since`), in the same round trip.
    async fn press_lookup(
        &self,
        token_hash: &[u8],
        key: &str,
        since: UnixMillis,
    ) -> Result<Option<PressRow>, StoreError>;
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

    // ---- alerts --------------------------------------------------------

    /// Inserts a batch of alerts in one transaction (group commit). An alert
    /// whose (person, idempotency key) exists is skipped, with its id returned.
    async fn alerts_insert(&self, batch: &[AlertInsert]) -> Result<Vec<Inserted>, StoreError>;
    async fn alert_get(&self, id: Uuid) -> Result<Option<AlertRow>, StoreError>;
    /// Real (not practice) alerts of a person still active.
    async fn alerts_active_count(&self, person_id: Uuid) -> Result<i64, StoreError>;
    /// For a press, in one round trip: the alert a key already made (if
    /// any) and how many alerts the person raised since a time.
    async fn alert_key_and_recent(
        &self,
        person_id: Uuid,
        key: &str,
        since: UnixMillis,
    ) -> Result<(Option<Uuid>, i64), StoreError>;
    async fn alert_outbox(&self, alert_id: Uuid) -> Result<Vec<OutboxRow>, StoreError>;
    async fn alert_latest_location(
        &self,
        alert_id: Uuid,
    ) -> Result<Option<LocationRow>, StoreError>;
    /// The newest location of any of the person's alerts.
    async fn person_latest_location(
        &self,
        person_id: Uuid,
    ) -> Result<Option<LocationRow>, StoreError>;
    async fn location_insert(&self, row: &LocationRow) -> Result<(), StoreError>;
    /// Cancels an active alert in one transaction: withdraws its queued alert
    /// messages and inserts what `follow_up` makes of the messages that may
    /// have reached their recipient (sending, sent, delivered). Returns the
    /// number withdrawn, or None when the alert was not active.
    async fn alert_cancel(
        &self,
        alert_id: Uuid,
        at: UnixMillis,
        follow_up: &(dyn for<'r> Fn(&'r [OutboxRow]) -> Result<Vec<OutboxRow>, StoreError> + Sync),
    ) -> Result<Option<u64>, StoreError>;

    // ---- cancel PIN lockout ----------------------------------------------

    /// Counts a wrong PIN; at `max` failures locks until `lock_until` and
    /// starts counting again. Returns (failures, locked_until).
    async fn person_pin_failed(
        &self,
        id: Uuid,
        max: i32,
        lock_until: UnixMillis,
    ) -> Result<(i32, Option<UnixMillis>), StoreError>;
    async fn person_pin_reset(&self, id: Uuid) -> Result<(), StoreError>;
    async fn person_pin_state(&self, id: Uuid) -> Result<(i32, Option<UnixMillis>), StoreError>;
    async fn person_by_phone_index(&self, index: &[u8]) -> Result<Option<PersonRow>, StoreError>;

    // ---- outbox --------------------------------------------------------

    /// Queues messages that belong to no alert (codes, replies).
    async fn outbox_insert(&self, rows: &[OutboxRow]) -> Result<(), StoreError>;
    /// Claims up to `limit` due messages, lowest rank first, leasing them
    /// until `lease_until`. Skips follow-ups whose parent is still in flight.
    async fn outbox_claim(
        &self,
        now: UnixMillis,
        limit: i64,
        lease_until: UnixMillis,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Statuses of some rows (parents of claimed follow-ups).
    async fn outbox_statuses(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>, StoreError>;
    /// Applies send results in one transaction; returns the alerts touched.
    async fn outbox_apply(&self, updates: &[OutboxUpdate]) -> Result<Vec<Uuid>, StoreError>;
    /// [`Backend::outbox_apply`] then [`Backend::outbox_claim`] in one
    /// transaction: the end of one dispatch round and the start of the next
    /// cost one commit.
    async fn outbox_apply_then_claim(
        &self,
        updates: &[OutboxUpdate],
        now: UnixMillis,
        limit: i64,
        lease_until: UnixMillis,
    ) -> Result<(Vec<Uuid>, Vec<OutboxRow>), StoreError>;
    /// Returns to the queue messages whose worker's lease ran out.
    async fn outbox_reclaim(&self, now: UnixMillis) -> Result<u64, StoreError>;
    /// Marks queued messages past their validity as expired.
    async fn outbox_expire(&self, now: UnixMillis) -> Result<Vec<Uuid>, StoreError>;
    /// A delivery receipt: moves a message to `status` when it is in one of
    /// `from`. Returns the message's alert (if any) when something changed.
    async fn outbox_receipt(
        &self,
        id: Uuid,
        status: &str,
        from: &[&str],
        reason: Option<&str>,
        at: UnixMillis,
    ) -> Result<Option<Option<Uuid>>, StoreError>;
    async fn outbox_get(&self, id: Uuid) -> Result<Option<OutboxRow>, StoreError>;
}
