//! The storage seam for the consulate console: staff, sessions, cases,
//! timelines, the audit log. Sealed like the rest: notes and outcome details
//! arrive here as ciphertext.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreError;
use crate::backend::{AlertRow, LocationRow};
use avisa_core::UnixMillis;

#[derive(Debug, Clone)]
pub struct StaffRow {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub consulate_id: String,
    pub role: String,
    pub disabled: bool,
    pub failed_logins: i32,
    pub locked_until: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub token_hash: Vec<u8>,
    pub staff_id: Uuid,
    pub csrf_token: String,
    pub created_at: UnixMillis,
    pub last_seen_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// The case columns of an alert.
#[derive(Debug, Clone, Default)]
pub struct CaseRow {
    pub case_state: String,
    pub assigned_to: Option<Uuid>,
    pub acknowledged_at: Option<UnixMillis>,
    pub acknowledged_by: Option<Uuid>,
    pub escalated_at: Option<UnixMillis>,
    pub resolved_at: Option<UnixMillis>,
    pub outcome: Option<String>,
    pub outcome_detail_enc: Option<Vec<u8>>,
}

/// One line of a console queue.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub alert: AlertRow,
    pub case: CaseRow,
    pub person_name_enc: Option<Vec<u8>>,
    pub latest_location: Option<LocationRow>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: Uuid,
    pub alert_id: Uuid,
    pub at: UnixMillis,
    pub staff_id: Option<Uuid>,
    pub kind: String,
    pub detail_enc: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: UnixMillis,
    pub staff_id: Option<Uuid>,
    pub staff_username: String,
    pub consulate_id: String,
    pub alert_id: Option<Uuid>,
    pub action: String,
    pub detail: Option<String>,
}

/// Which alerts a queue shows.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// None: every consulate (CIAM).
    pub consulate_id: Option<String>,
    /// `new`, `acknowledged`, `resolved` (open cases) or `cancelled`.
    pub state: Option<String>,
    pub from: Option<UnixMillis>,
    pub to: Option<UnixMillis>,
    pub limit: i64,
}

/// A case change, applied with its timeline event in one transaction.
#[derive(Debug, Clone)]
pub enum CaseChange {
    /// Takes the case: acknowledged, and assigned to `staff` unless assigned.
    Acknowledge {
        staff: Uuid,
    },
    Assign {
        staff: Uuid,
    },
    Resolve {
        outcome: String,
        detail_enc: Option<Vec<u8>>,
    },
    Reopen,
    /// Only a timeline entry (a note).
    Note,
}

#[async_trait]
pub trait ConsoleBackend: Send + Sync + 'static {
    async fn staff_insert(&self, row: &StaffRow) -> Result<(), StoreError>;
    async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRow>, StoreError>;
    async fn staff_by_id(&self, id: Uuid) -> Result<Option<StaffRow>, StoreError>;
    async fn staff_all(&self) -> Result<Vec<StaffRow>, StoreError>;
    async fn staff_set_password(
        &self,
        id: Uuid,
        hash: &str,
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    async fn staff_set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        at: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Counts a failed login; at `max` locks until `lock_until` and starts
    /// counting again. Returns (failures, locked_until).
    async fn staff_login_failed(
        &self,
        id: Uuid,
        max: i32,
        lock_until: UnixMillis,
    ) -> Result<(i32, Option<UnixMillis>), StoreError>;
    async fn staff_login_ok(&self, id: Uuid) -> Result<(), StoreError>;

    async fn session_insert(&self, row: &SessionRow) -> Result<(), StoreError>;
    async fn session_get(&self, token_hash: &[u8]) -> Result<Option<SessionRow>, StoreError>;
    async fn session_touch(
        &self,
        token_hash: &[u8],
        at: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError>;
    async fn session_delete(&self, token_hash: &[u8]) -> Result<(), StoreError>;
    async fn sessions_delete_for(&self, staff_id: Uuid) -> Result<(), StoreError>;

    async fn queue(&self, filter: &QueueFilter) -> Result<Vec<QueueRow>, StoreError>;
    async fn case_get(&self, alert_id: Uuid) -> Result<Option<CaseRow>, StoreError>;
    /// Delivery counts per status of each alert's messages.
    async fn delivery_counts(
        &self,
        alert_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, String, i64)>, StoreError>;
    async fn alert_trail(&self, alert_id: Uuid) -> Result<Vec<LocationRow>, StoreError>;
    /// Applies a change and its event; false when the case's state did not
    /// allow it (acknowledging a resolved case, resolving twice).
    async fn case_change(
        &self,
        alert_id: Uuid,
        change: &CaseChange,
        event: &EventRow,
    ) -> Result<bool, StoreError>;
    async fn events(&self, alert_id: Uuid) -> Result<Vec<EventRow>, StoreError>;
    /// Marks active, real, unacknowledged alerts created before `before` as
    /// escalated, with an event each; returns them.
    async fn escalate_due(
        &self,
        before: UnixMillis,
        at: UnixMillis,
    ) -> Result<Vec<Uuid>, StoreError>;

    async fn audit_insert(&self, row: &AuditRow) -> Result<(), StoreError>;
    async fn audit_list(
        &self,
        alert_id: Option<Uuid>,
        consulate_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Real alerts created in [from, to), for statistics.
    async fn stats_rows(
        &self,
        consulate_id: Option<&str>,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<(AlertRow, CaseRow)>, StoreError>;
}
