//! The console's side of the store, in plain domain types.

use avisa_core::{Location, UnixMillis};
use uuid::Uuid;

use crate::console_backend::{
    AuditRow, CaseChange, CaseRow, EventRow, QueueFilter, SessionRow, StaffRow,
};
use crate::{Store, StoreError, aad};

/// A staff member, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub id: Uuid,
    pub username: String,
    /// A directory office id, or `ciam` (sees every consulate's alerts).
    pub consulate_id: String,
    /// `operator`, `supervisor` or `admin`.
    pub role: String,
    pub disabled: bool,
}

impl From<&StaffRow> for Staff {
    fn from(r: &StaffRow) -> Self {
        Staff {
            id: r.id,
            username: r.username.clone(),
            consulate_id: r.consulate_id.clone(),
            role: r.role.clone(),
            disabled: r.disabled,
        }
    }
}

/// A case as the console sees it.
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// `new`, `acknowledged` or `resolved`.
    pub state: String,
    pub assigned_to: Option<Uuid>,
    pub acknowledged_at: Option<UnixMillis>,
    pub acknowledged_by: Option<Uuid>,
    pub escalated_at: Option<UnixMillis>,
    pub resolved_at: Option<UnixMillis>,
    pub outcome: Option<String>,
    /// Where the person is held, or other detail of the outcome.
    pub outcome_detail: Option<String>,
}

/// One line of a queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub alert_id: Uuid,
    pub created_at: UnixMillis,
    /// `active` or `cancelled`.
    pub state: String,
    pub source: String,
    pub consulate_id: Option<String>,
    pub coverage: String,
    pub person_name: Option<String>,
    pub location: Option<Location>,
    pub case: Case,
    /// (status, count) of the alert's messages.
    pub delivery: Vec<(String, i64)>,
}

/// A timeline entry made by staff or the escalation.
#[derive(Debug, Clone)]
pub struct CaseEvent {
    pub at: UnixMillis,
    pub staff_id: Option<Uuid>,
    pub kind: String,
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
    Resolve {
        outcome: String,
        detail: Option<String>,
    },
    Reopen,
}

/// A line of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub at: UnixMillis,
    pub staff_username: String,
    pub consulate_id: String,
    pub alert_id: Option<Uuid>,
    pub action: String,
    pub detail: Option<String>,
}

/// An alert's figures for statistics.
#[derive(Debug, Clone)]
pub struct StatRow {
    pub created_at: UnixMillis,
    pub consulate_id: Option<String>,
    pub acknowledged_at: Option<UnixMillis>,
    pub outcome: Option<String>,
    pub cancelled: bool,
}

impl Store {
    fn case_from(&self, alert_id: Uuid, r: CaseRow) -> Result<Case, StoreError> {
        Ok(Case {
            state: r.case_state,
            assigned_to: r.assigned_to,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            escalated_at: r.escalated_at,
            resolved_at: r.resolved_at,
            outcome: r.outcome,
            outcome_detail: r
                .outcome_detail_enc
                .as_deref()
                .map(|d| {
                    self.vault
                        .open_string(&aad("alerts.outcome_detail", alert_id), d)
                })
                .transpose()?,
        })
    }

    // ---- staff -------------------------------------------------------------

    pub async fn add_staff(
        &self,
        username: &str,
        password_hash: &str,
        consulate_id: &str,
        role: &str,
        now: UnixMillis,
    ) -> Result<Staff, StoreError> {
        let row = StaffRow {
            id: Uuid::now_v7(),
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            consulate_id: consulate_id.to_string(),
            role: role.to_string(),
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            created_at: now,
            updated_at: now,
        };
        self.backend.staff_insert(&row).await?;
        Ok(Staff::from(&row))
    }

    /// The staff member and their password hash.
    pub async fn staff_login_row(&self, username: &str) -> Result<Option<StaffRow>, StoreError> {
        self.backend.staff_by_username(username).await
    }

    pub async fn staff_by_username(&self, username: &str) -> Result<Option<Staff>, StoreError> {
        Ok(self
            .backend
            .staff_by_username(username)
            .await?
            .as_ref()
            .map(Staff::from))
    }

    pub async fn staff_by_id(&self, id: Uuid) -> Result<Option<Staff>, StoreError> {
        Ok(self
            .backend
            .staff_by_id(id)
            .await?
            .as_ref()
            .map(Staff::from))
    }

    pub async fn staff_all(&self) -> Result<Vec<Staff>, StoreError> {
        Ok(self
            .backend
            .staff_all()
            .await?
            .iter()
            .map(Staff::from)
            .collect())
    }

    /// Sets a new password and ends every session of that staff member.
    pub async fn set_staff_password(
        &self,
        id: Uuid,
        hash: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.backend.staff_set_password(id, hash, now).await?;
        self.backend.sessions_delete_for(id).await
    }

    /// Disables (or enables) an account; disabling ends its sessions.
    pub async fn set_staff_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.backend.staff_set_disabled(id, disabled, now).await?;
        if disabled {
            self.backend.sessions_delete_for(id).await?;
        }
        Ok(())
    }

    pub async fn staff_login_failed(
        &self,
        id: Uuid,
        max: i32,
        lock_until: UnixMillis,
    ) -> Result<(i32, Option<UnixMillis>), StoreError> {
        self.backend.staff_login_failed(id, max, lock_until).await
    }

    pub async fn staff_login_ok(&self, id: Uuid) -> Result<(), StoreError> {
        self.backend.staff_login_ok(id).await
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
        self.backend
            .session_insert(&SessionRow {
                token_hash,
                staff_id,
                csrf_token,
                created_at: now,
                last_seen_at: now,
                expires_at,
            })
            .await
    }

    pub async fn session(&self, token_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        self.backend.session_get(token_hash).await
    }

    pub async fn touch_session(
        &self,
        token_hash: &[u8],
        now: UnixMillis,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.backend
            .session_touch(token_hash, now, expires_at)
            .await
    }

    pub async fn end_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        self.backend.session_delete(token_hash).await
    }

    // ---- cases ---------------------------------------------------------------

    pub async fn queue(&self, filter: &QueueFilter) -> Result<Vec<QueueItem>, StoreError> {
        let rows = self.backend.queue(filter).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.alert.id).collect();
        let counts = self.backend.delivery_counts(&ids).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id = r.alert.id;
            let location = match &r.latest_location {
                Some(l) => Some(crate::alerts::open_location(
                    self,
                    &aad("alert_locations.location", l.id),
                    &l.location_enc,
                )?),
                None => None,
            };
            out.push(QueueItem {
                alert_id: id,
                created_at: r.alert.created_at,
                state: r.alert.state,
                source: r.alert.source,
                consulate_id: r.alert.consulate_id,
                coverage: r.alert.coverage,
                person_name: r
                    .person_name_enc
                    .as_deref()
                    .map(|n| {
                        self.vault
                            .open_string(&aad("people.name", r.alert.person_id), n)
                    })
                    .transpose()?,
                location,
                case: self.case_from(id, r.case)?,
                delivery: counts
                    .iter()
                    .filter(|(a, _, _)| *a == id)
                    .map(|(_, s, n)| (s.clone(), *n))
                    .collect(),
            });
        }
        Ok(out)
    }

    pub async fn case(&self, alert_id: Uuid) -> Result<Option<Case>, StoreError> {
        match self.backend.case_get(alert_id).await? {
            Some(r) => Ok(Some(self.case_from(alert_id, r)?)),
            None => Ok(None),
        }
    }

    /// Every location of the alert, oldest first.
    pub async fn trail(&self, alert_id: Uuid) -> Result<Vec<(Location, UnixMillis)>, StoreError> {
        self.backend
            .alert_trail(alert_id)
            .await?
            .iter()
            .map(|l| {
                Ok((
                    crate::alerts::open_location(
                        self,
                        &aad("alert_locations.location", l.id),
                        &l.location_enc,
                    )?,
                    l.created_at,
                ))
            })
            .collect()
    }

    /// Applies a staff action with its timeline event; false when the case's
    /// state does not allow it.
    pub async fn change_case(
        &self,
        alert_id: Uuid,
        staff: Uuid,
        action: &CaseAction,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let event_id = Uuid::now_v7();
        let seal = |text: &str| {
            self.vault
                .seal_str(&aad("alert_events.detail", event_id), text)
        };
        let (change, kind, detail) = match action {
            CaseAction::Acknowledge => (CaseChange::Acknowledge { staff }, "acknowledged", None),
            CaseAction::Assign { to, username } => (
                CaseChange::Assign { staff: *to },
                "assigned",
                Some(seal(username)?),
            ),
            CaseAction::Note { text } => (CaseChange::Note, "note", Some(seal(text)?)),
            CaseAction::Resolve { outcome, detail } => {
                let sealed = detail
                    .as_deref()
                    .map(|d| {
                        self.vault
                            .seal_str(&aad("alerts.outcome_detail", alert_id), d)
                    })
                    .transpose()?;
                let text = match detail {
                    Some(d) => format!("{outcome}: {d}"),
                    None => outcome.clone(),
                };
                (
                    CaseChange::Resolve {
                        outcome: outcome.clone(),
                        detail_enc: sealed,
                    },
                    "resolved",
                    Some(seal(&text)?),
                )
            }
            CaseAction::Reopen => (CaseChange::Reopen, "reopened", None),
        };
        let event = EventRow {
            id: event_id,
            alert_id,
            at: now,
            staff_id: Some(staff),
            kind: kind.into(),
            detail_enc: detail,
        };
        self.backend.case_change(alert_id, &change, &event).await
    }

    pub async fn case_events(&self, alert_id: Uuid) -> Result<Vec<CaseEvent>, StoreError> {
        self.backend
            .events(alert_id)
            .await?
            .into_iter()
            .map(|e| {
                Ok(CaseEvent {
                    detail: e
                        .detail_enc
                        .as_deref()
                        .map(|d| self.vault.open_string(&aad("alert_events.detail", e.id), d))
                        .transpose()?,
                    at: e.at,
                    staff_id: e.staff_id,
                    kind: e.kind,
                })
            })
            .collect()
    }

    /// Escalates real alerts still unacknowledged since before `before`.
    pub async fn escalate_due(
        &self,
        before: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.backend.escalate_due(before, now).await
    }

    // ---- audit -----------------------------------------------------------------

    pub async fn audit(
        &self,
        staff: &Staff,
        alert_id: Option<Uuid>,
        action: &str,
        detail: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.backend
            .audit_insert(&AuditRow {
                id: 0,
                at: now,
                staff_id: Some(staff.id),
                staff_username: staff.username.clone(),
                consulate_id: staff.consulate_id.clone(),
                alert_id,
                action: action.to_string(),
                detail: detail.map(str::to_string),
            })
            .await
    }

    pub async fn audit_log(
        &self,
        alert_id: Option<Uuid>,
        consulate_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .backend
            .audit_list(alert_id, consulate_id, limit)
            .await?
            .into_iter()
            .map(|a| AuditEntry {
                id: a.id,
                at: a.at,
                staff_username: a.staff_username,
                consulate_id: a.consulate_id,
                alert_id: a.alert_id,
                action: a.action,
                detail: a.detail,
            })
            .collect())
    }

    pub async fn stat_rows(
        &self,
        consulate_id: Option<&str>,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<StatRow>, StoreError> {
        Ok(self
            .backend
            .stats_rows(consulate_id, from, to)
            .await?
            .into_iter()
            .map(|(a, c)| StatRow {
                created_at: a.created_at,
                consulate_id: a.consulate_id,
                acknowledged_at: c.acknowledged_at,
                outcome: c.outcome,
                cancelled: a.state == "cancelled",
            })
            .collect())
    }
}
