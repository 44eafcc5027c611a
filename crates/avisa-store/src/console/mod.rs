//! The consulate console's side of the store: staff and their sessions,
//! cases (an alert's case columns and timeline), the audit log and
//! statistics. Sealed like the rest: notes and outcome details are stored
//! as ciphertext.

mod audit;
pub(crate) mod cases;
mod staff;

use avisa_core::{
    AlertSource, AlertState, AuditAction, CIAM, CallResult, CallWith, CaseEventKind, CaseState,
    Coverage, Location, OutboxStatus, Outcome, Role, UnixMillis,
};
use uuid::Uuid;

/// A staff member, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub id: Uuid,
    pub username: String,
    /// A directory office id, or [`CIAM`] (sees every consulate's alerts).
    pub consulate_id: String,
    pub role: Role,
    pub disabled: bool,
}

impl Staff {
    /// Whether this is CIAM's staff, who see every consulate's alerts.
    pub fn sees_all(&self) -> bool {
        self.consulate_id == CIAM
    }
}

/// What a login checks: the account and its password hash.
#[derive(Debug, Clone)]
pub struct StaffLogin {
    pub staff: Staff,
    pub password_hash: String,
}

/// A console session (its token is kept only as a hash).
#[derive(Debug, Clone)]
pub struct Session {
    pub staff_id: Uuid,
    pub csrf_token: String,
    pub created_at: UnixMillis,
    pub last_seen_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A case as the console sees it.
#[derive(Debug, Clone)]
pub struct Case {
    pub state: CaseState,
    pub assigned_to: Option<Uuid>,
    pub acknowledged_at: Option<UnixMillis>,
    pub acknowledged_by: Option<Uuid>,
    pub escalated_at: Option<UnixMillis>,
    pub resolved_at: Option<UnixMillis>,
    pub outcome: Option<Outcome>,
    /// Where the person is held, or other detail of the outcome.
    pub outcome_detail: Option<String>,
}

/// Which cases a queue shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueView {
    /// Every case not resolved.
    #[default]
    Open,
    /// Active alerts nobody took yet.
    New,
    /// Active alerts someone took.
    Acknowledged,
    Resolved,
    /// Alerts the person cancelled.
    Cancelled,
}

/// Which alerts a queue shows.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// None: every consulate (CIAM).
    pub consulate_id: Option<String>,
    pub view: QueueView,
    pub from: Option<UnixMillis>,
    pub to: Option<UnixMillis>,
    pub limit: i64,
}

/// One line of a queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub alert_id: Uuid,
    pub created_at: UnixMillis,
    pub state: AlertState,
    /// When the person "cancelled" under duress (the alert stands).
    pub duress_at: Option<UnixMillis>,
    pub source: AlertSource,
    pub consulate_id: Option<String>,
    pub coverage: Coverage,
    /// "LAX-2026-0042" (None for alerts from before numbers).
    pub case_number: Option<String>,
    pub person_name: Option<String>,
    pub location: Option<Location>,
    pub case: Case,
    /// (status, count) of the alert's messages.
    pub delivery: Vec<(OutboxStatus, i64)>,
}

/// One of a person's real alerts, as a case lists the others.
#[derive(Debug, Clone)]
pub struct PersonAlert {
    pub id: Uuid,
    pub consulate_id: Option<String>,
    pub case_number: Option<String>,
    pub created_at: UnixMillis,
    pub state: AlertState,
    pub case_state: CaseState,
    pub outcome: Option<Outcome>,
}

/// One of an alert's own messages as the console shows it.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub recipient_id: Uuid,
    /// None once retention erased it (`retention.message_bodies`).
    pub text: Option<String>,
    /// The number it went to; None once the case's personal data is erased.
    pub to: Option<String>,
    /// When the gateway took it.
    pub sent_at: Option<UnixMillis>,
    /// Its last change (the delivery receipt, the failure).
    pub updated_at: UnixMillis,
}

/// An alert the escalation just took up (`again`: its second threshold).
#[derive(Debug, Clone)]
pub struct Escalated {
    pub id: Uuid,
    pub person_id: Uuid,
    pub consulate_id: Option<String>,
    pub person_name: Option<String>,
    pub created_at: UnixMillis,
    pub again: bool,
    pub case_number: Option<String>,
}

/// A timeline entry made by staff or the escalation.
#[derive(Debug, Clone)]
pub struct CaseEvent {
    pub at: UnixMillis,
    pub staff_id: Option<Uuid>,
    pub kind: CaseEventKind,
    pub detail: Option<String>,
}

/// A change a staff member makes to a case.
#[derive(Debug, Clone)]
pub enum CaseAction {
    Acknowledge,
    Assign {
        to: Uuid,
        username: String,
    },
    Note {
        text: String,
    },
    /// A call made about the case (its note sealed like any note).
    Call {
        with: CallWith,
        result: CallResult,
        note: Option<String>,
    },
    Resolve {
        outcome: Outcome,
        detail: Option<String>,
    },
    Reopen,
}

impl CaseAction {
    /// How the action is written in the audit log.
    pub fn audit_action(&self) -> AuditAction {
        match self {
            CaseAction::Acknowledge => AuditAction::Acknowledge,
            CaseAction::Assign { .. } => AuditAction::Assign,
            CaseAction::Note { .. } => AuditAction::Note,
            CaseAction::Call { .. } => AuditAction::Call,
            CaseAction::Resolve { .. } => AuditAction::Resolve,
            CaseAction::Reopen => AuditAction::Reopen,
        }
    }

    /// The timeline entry it makes.
    pub fn event_kind(&self) -> CaseEventKind {
        match self {
            CaseAction::Acknowledge => CaseEventKind::Acknowledged,
            CaseAction::Assign { .. } => CaseEventKind::Assigned,
            CaseAction::Note { .. } => CaseEventKind::Note,
            CaseAction::Call { .. } => CaseEventKind::Call,
            CaseAction::Resolve { .. } => CaseEventKind::Resolved,
            CaseAction::Reopen => CaseEventKind::Reopened,
        }
    }
}

/// Whose an alert is (see [`crate::Store::alert_owner`]).
#[derive(Debug, Clone)]
pub struct AlertOwner {
    pub consulate_id: Option<String>,
    pub practice: bool,
}

/// A line of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub at: UnixMillis,
    pub staff_username: String,
    pub consulate_id: String,
    pub alert_id: Option<Uuid>,
    /// The alert's case number, when it has one.
    pub case_number: Option<String>,
    pub action: AuditAction,
    pub detail: Option<String>,
}

/// An alert's figures for statistics.
#[derive(Debug, Clone)]
pub struct StatRow {
    /// "LAX-2026-0042", for the per-case lines of the CSV.
    pub case_number: Option<String>,
    pub created_at: UnixMillis,
    pub consulate_id: Option<String>,
    pub acknowledged_at: Option<UnixMillis>,
    pub outcome: Option<Outcome>,
    pub cancelled: bool,
}
