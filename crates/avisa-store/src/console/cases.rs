//! Cases: the console's queue, an alert's case columns and timeline, the
//! changes staff make, and the escalation of alerts nobody took.

use avisa_core::{CaseEventKind, CaseState, OutboxStatus, Outcome, UnixMillis};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::{
    Case, CaseAction, CaseEvent, Escalated, PersonAlert, QueueFilter, QueueItem, QueueView,
    SentMessage,
};
use crate::alerts::{AlertRow, LocationRow};
use crate::db::{Tx, db_run};
use crate::keys::Keys;
use crate::outbox::NewMessage;
use crate::{Store, StoreError, aad};

/// The case columns of an alert.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct CaseRow {
    pub case_state: CaseState,
    pub assigned_to: Option<Uuid>,
    pub acknowledged_at: Option<UnixMillis>,
    pub acknowledged_by: Option<Uuid>,
    pub escalated_at: Option<UnixMillis>,
    pub resolved_at: Option<UnixMillis>,
    /// Written before outcomes were sealed (the store seals these at start).
    pub outcome: Option<Outcome>,
    pub outcome_enc: Option<Vec<u8>>,
    pub outcome_detail_enc: Option<Vec<u8>>,
}

#[derive(Debug, Clone, FromRow)]
pub(crate) struct EventRow {
    pub id: Uuid,
    pub alert_id: Uuid,
    pub at: UnixMillis,
    pub staff_id: Option<Uuid>,
    pub kind: CaseEventKind,
    pub detail_enc: Option<Vec<u8>>,
}

/// A queue line as read: the alert, its case, the person's sealed name and
/// the newest point of the trail.
type QueueRow = (AlertRow, CaseRow, Option<Vec<u8>>, Option<LocationRow>);

/// The newest point of an alert's trail, one column at a time.
const LATEST: &str = "FROM alert_locations l WHERE l.alert_id = a.id \
                      ORDER BY l.created_at DESC, l.id DESC LIMIT 1";

pub(crate) async fn insert_event(tx: &mut Tx, e: &EventRow) -> Result<(), StoreError> {
    db_run!(tx, |t| {
        sqlx::query(
            "INSERT INTO alert_events (id, alert_id, at, staff_id, kind, detail_enc) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id)
        .bind(e.alert_id)
        .bind(e.at)
        .bind(e.staff_id)
        .bind(e.kind)
        .bind(&e.detail_enc)
        .execute(&mut **t)
        .await?;
    });
    Ok(())
}

impl Store {
    /// Seals the outcomes written in plain text before outcomes were sealed
    /// (run at start; each one statement, so two instances starting
    /// together seal each once).
    pub(crate) async fn seal_plain_outcomes(&self) -> Result<u64, StoreError> {
        let sql = "SELECT id, person_id, outcome FROM alerts WHERE outcome IS NOT NULL";
        let rows: Vec<(Uuid, Uuid, Outcome)> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).fetch_all(pool).await
        })?;
        let update = "UPDATE alerts SET outcome_enc = $1, outcome = NULL \
                      WHERE id = $2 AND outcome IS NOT NULL";
        for (id, person, outcome) in &rows {
            let key = self.person_key(*person).await?;
            let sealed = key.seal(
                aad("alerts.outcome", *id).as_bytes(),
                outcome.as_str().as_bytes(),
            )?;
            db_run!(self.db.writer(), |pool| {
                sqlx::query(update)
                    .bind(&sealed)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })?;
        }
        Ok(rows.len() as u64)
    }
}

impl Keys {
    /// A case's outcome: sealed, or plain from before outcomes were.
    pub(crate) fn outcome(
        &self,
        alert_id: Uuid,
        sealed: Option<&[u8]>,
        plain: Option<Outcome>,
    ) -> Result<Option<Outcome>, StoreError> {
        match sealed {
            Some(s) => Ok(Some(
                self.open_str(&aad("alerts.outcome", alert_id), s)?
                    .parse()
                    .map_err(|_| StoreError::Crypto(avisa_core::crypto::CryptoError::Open))?,
            )),
            None => Ok(plain),
        }
    }

    pub(crate) fn case(&self, alert_id: Uuid, r: CaseRow) -> Result<Case, StoreError> {
        Ok(Case {
            state: r.case_state,
            assigned_to: r.assigned_to,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            escalated_at: r.escalated_at,
            resolved_at: r.resolved_at,
            outcome: self.outcome(alert_id, r.outcome_enc.as_deref(), r.outcome)?,
            outcome_detail: r
                .outcome_detail_enc
                .as_deref()
                .map(|d| self.open_str(&aad("alerts.outcome_detail", alert_id), d))
                .transpose()?,
        })
    }
}

impl Store {
    /// A consulate's queue: unacknowledged first, then the oldest first.
    pub async fn queue(&self, f: &QueueFilter) -> Result<Vec<QueueItem>, StoreError> {
        let rows: Vec<QueueRow> = db_run!(self.db.reader(), |pool| {
            let mut b = sqlx::QueryBuilder::new(format!(
                "SELECT a.*, p.name_enc AS person_name_enc, (SELECT l.id {LATEST}) AS loc_id, \
                   (SELECT l.location_enc {LATEST}) AS loc_enc, \
                   (SELECT l.created_at {LATEST}) AS loc_at \
                 FROM alerts a JOIN people p ON p.id = a.person_id WHERE a.practice = "
            ));
            b.push_bind(false);
            if let Some(c) = &f.consulate_id {
                b.push(" AND a.consulate_id = ").push_bind(c);
            }
            b.push(match f.view {
                QueueView::Open => " AND a.case_state <> 'resolved'",
                QueueView::New => " AND a.case_state = 'new' AND a.state = 'active'",
                QueueView::Acknowledged => {
                    " AND a.case_state = 'acknowledged' AND a.state = 'active'"
                }
                QueueView::Resolved => " AND a.case_state = 'resolved'",
                QueueView::Cancelled => " AND a.state = 'cancelled'",
            });
            if let Some(from) = f.from {
                b.push(" AND a.created_at >= ").push_bind(from);
            }
            if let Some(to) = f.to {
                b.push(" AND a.created_at < ").push_bind(to);
            }
            b.push(
                // A cancel forced with the duress PIN tops the queue until
                // the case is resolved, escalated ones next; then what
                // nobody took yet; a cancelled alert leaves that group, to
                // be confirmed with the rest. Within each group the one
                // waiting longest comes first: a new one is announced by
                // the alarm and the title, the oldest would otherwise sink
                // below the screen.
                " ORDER BY CASE WHEN a.duress_at IS NOT NULL AND a.case_state <> 'resolved' THEN 0 \
                   WHEN a.case_state = 'new' AND a.state = 'active' AND a.escalated_at IS NOT NULL THEN 1 \
                   WHEN a.case_state = 'new' AND a.state = 'active' THEN 2 ELSE 3 END, \
                   a.created_at, a.id \
                 LIMIT ",
            )
            .push_bind(f.limit);
            let mut rows = Vec::new();
            for r in b.build().persistent(false).fetch_all(pool).await? {
                let alert = AlertRow::from_row(&r)?;
                let latest = match r.try_get::<Option<Uuid>, _>("loc_id")? {
                    Some(id) => Some(LocationRow {
                        id,
                        alert_id: alert.id,
                        location_enc: r.try_get("loc_enc")?,
                        created_at: r.try_get("loc_at")?,
                        implausible: false,
                    }),
                    None => None,
                };
                rows.push((
                    alert,
                    CaseRow::from_row(&r)?,
                    r.try_get("person_name_enc")?,
                    latest,
                ));
            }
            rows
        });
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0.id).collect();
        let counts = self.delivery_counts(&ids).await?;
        let keys = self.load_people(rows.iter().map(|r| r.0.person_id)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (alert, case, name, latest) in rows {
            let id = alert.id;
            out.push(QueueItem {
                alert_id: id,
                created_at: alert.created_at,
                state: alert.state,
                duress_at: alert.duress_at,
                source: alert.source,
                consulate_id: alert.consulate_id,
                coverage: alert.coverage,
                case_number: alert.case_number,
                person_name: name
                    .as_deref()
                    .map(|n| keys.open_str(&aad("people.name", alert.person_id), n))
                    .transpose()?,
                location: latest.map(|l| keys.open_location(&l)).transpose()?,
                case: keys.case(id, case)?,
                delivery: counts
                    .iter()
                    .filter(|(a, _, _)| *a == id)
                    .map(|(_, s, n)| (*s, *n))
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Delivery counts per status of each alert's messages.
    async fn delivery_counts(
        &self,
        alert_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, OutboxStatus, i64)>, StoreError> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(db_run!(self.db.reader(), |pool| {
            let mut b = sqlx::QueryBuilder::new(
                "SELECT alert_id, status, COUNT(*) FROM outbox \
                 WHERE purpose = 'alert' AND alert_id IN (",
            );
            let mut list = b.separated(", ");
            for id in alert_ids {
                list.push_bind(*id);
            }
            b.push(") GROUP BY alert_id, status");
            b.build_query_as().persistent(false).fetch_all(pool).await?
        }))
    }

    pub async fn case(&self, alert_id: Uuid) -> Result<Option<Case>, StoreError> {
        let sql = "SELECT * FROM alerts WHERE id = $1";
        let row: Option<CaseRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(alert_id)
                .fetch_optional(pool)
                .await
        })?;
        let keys = self
            .load_keys(row.iter().flat_map(|r| {
                [r.outcome_enc.as_deref(), r.outcome_detail_enc.as_deref()]
                    .into_iter()
                    .flatten()
            }))
            .await?;
        row.map(|r| keys.case(alert_id, r)).transpose()
    }

    /// Every location of the alert, oldest first.
    /// Applies a staff action with its timeline event, in one transaction;
    /// false when the case's state does not allow it (acknowledging a
    /// resolved case, resolving twice).
    pub async fn change_case(
        &self,
        alert_id: Uuid,
        staff: Uuid,
        action: &CaseAction,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let event_id = Uuid::now_v7();
        let key = match self.alert_key(alert_id).await {
            Ok(key) => key,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        };
        let seal = |text: &str| {
            key.seal(
                aad("alert_events.detail", event_id).as_bytes(),
                text.as_bytes(),
            )
        };
        let detail = match action {
            CaseAction::Acknowledge | CaseAction::Reopen => None,
            CaseAction::Assign { username, .. } => Some(seal(username)?),
            CaseAction::Note { text } => Some(seal(text)?),
            // "contact no_answer", then the note on its own line.
            CaseAction::Call { with, result, note } => Some(seal(&match note {
                Some(n) => format!("{with} {result}\n{n}"),
                None => format!("{with} {result}"),
            })?),
            CaseAction::Resolve { outcome, detail } => Some(seal(&match detail {
                Some(d) => format!("{outcome}: {d}"),
                None => outcome.to_string(),
            })?),
        };
        let outcome_sealed = match action {
            CaseAction::Resolve { outcome, .. } => Some(key.seal(
                aad("alerts.outcome", alert_id).as_bytes(),
                outcome.as_str().as_bytes(),
            )?),
            _ => None,
        };
        let outcome_detail = match action {
            CaseAction::Resolve {
                detail: Some(d), ..
            } => Some(key.seal(
                aad("alerts.outcome_detail", alert_id).as_bytes(),
                d.as_bytes(),
            )?),
            _ => None,
        };
        let mut tx = self.db.begin().await?;
        let applied = db_run!(&mut tx, |t| {
            let query = match action {
                CaseAction::Acknowledge => Some(
                    sqlx::query(
                        "UPDATE alerts SET case_state = 'acknowledged', acknowledged_at = $1, \
                         acknowledged_by = $2, assigned_to = COALESCE(assigned_to, $2) \
                         WHERE id = $3 AND case_state = 'new'",
                    )
                    .bind(now)
                    .bind(staff),
                ),
                CaseAction::Assign { to, .. } => Some(
                    sqlx::query(
                        "UPDATE alerts SET assigned_to = $1 \
                         WHERE id = $2 AND case_state <> 'resolved'",
                    )
                    .bind(*to),
                ),
                CaseAction::Resolve { .. } => Some(
                    sqlx::query(
                        "UPDATE alerts SET case_state = 'resolved', resolved_at = $1, \
                         outcome = NULL, outcome_enc = $2, outcome_detail_enc = $3 \
                         WHERE id = $4 AND case_state <> 'resolved'",
                    )
                    .bind(now)
                    .bind(&outcome_sealed)
                    .bind(&outcome_detail),
                ),
                CaseAction::Reopen => Some(sqlx::query(
                    "UPDATE alerts SET case_state = CASE WHEN acknowledged_at IS NULL \
                     THEN 'new' ELSE 'acknowledged' END, resolved_at = NULL, outcome = NULL, \
                     outcome_enc = NULL, outcome_detail_enc = NULL \
                     WHERE id = $1 AND case_state = 'resolved'",
                )),
                // A note or a call changes nothing but the timeline.
                CaseAction::Note { .. } | CaseAction::Call { .. } => None,
            };
            match query {
                Some(q) => q.bind(alert_id).execute(&mut **t).await?.rows_affected() == 1,
                None => true,
            }
        });
        if !applied {
            return Ok(false);
        }
        let event = EventRow {
            id: event_id,
            alert_id,
            at: now,
            staff_id: Some(staff),
            kind: action.event_kind(),
            detail_enc: detail,
        };
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The case's timeline, oldest first.
    pub async fn case_events(&self, alert_id: Uuid) -> Result<Vec<CaseEvent>, StoreError> {
        let sql = "SELECT * FROM alert_events WHERE alert_id = $1 ORDER BY at, id";
        let rows: Vec<EventRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(alert_id).fetch_all(pool).await
        })?;
        let keys = self
            .load_keys(rows.iter().filter_map(|e| e.detail_enc.as_deref()))
            .await?;
        rows.into_iter()
            .map(|e| {
                Ok(CaseEvent {
                    detail: e
                        .detail_enc
                        .as_deref()
                        .map(|d| keys.open_str(&aad("alert_events.detail", e.id), d))
                        .transpose()?,
                    at: e.at,
                    staff_id: e.staff_id,
                    kind: e.kind,
                })
            })
            .collect()
    }

    /// Escalates, once across instances, every real alert still new after
    /// the first threshold (created before `first`), and again after the
    /// second (`second`): each marked and put on the timeline in one
    /// transaction with the duty SMS `notify` makes for it, so a crash can
    /// neither lose them nor send them twice.
    pub async fn escalate_due(
        &self,
        first: UnixMillis,
        second: UnixMillis,
        now: UnixMillis,
        notify: impl Fn(&Escalated) -> Vec<NewMessage>,
    ) -> Result<Vec<Escalated>, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut escalated = Vec::new();
        for (again, sql) in [
            (
                false,
                "UPDATE alerts SET escalated_at = $1 WHERE case_state = 'new' \
                 AND escalated_at IS NULL AND state = 'active' AND practice = $2 \
                 AND created_at <= $3 RETURNING id, consulate_id, person_id, created_at, case_number",
            ),
            (
                true,
                "UPDATE alerts SET escalated_again_at = $1 WHERE case_state = 'new' \
                 AND escalated_at IS NOT NULL AND escalated_again_at IS NULL \
                 AND state = 'active' AND practice = $2 AND created_at <= $3 \
                 RETURNING id, consulate_id, person_id, created_at, case_number",
            ),
        ] {
            type Due = (Uuid, Option<String>, Uuid, UnixMillis, Option<String>);
            let rows: Vec<Due> = db_run!(&mut tx, |t| {
                sqlx::query_as(sql)
                    .bind(now)
                    .bind(false)
                    .bind(if again { second } else { first })
                    .fetch_all(&mut **t)
                    .await?
            });
            for (id, consulate_id, person_id, created_at, case_number) in rows {
                let name_enc: Option<Vec<u8>> = db_run!(&mut tx, |t| {
                    sqlx::query_scalar("SELECT name_enc FROM people WHERE id = $1")
                        .bind(person_id)
                        .fetch_one(&mut **t)
                        .await?
                });
                // (The reader pool: the writer is this transaction's.)
                let keys = self.load_people([person_id]).await?;
                let name = name_enc
                    .map(|n| keys.open_str(&aad("people.name", person_id), &n))
                    .transpose()?;
                escalated.push(Escalated {
                    id,
                    person_id,
                    consulate_id,
                    person_name: name,
                    created_at,
                    again,
                    case_number,
                });
            }
        }
        // The duty SMS are sealed with each person's key.
        let keys = self
            .load_people(escalated.iter().map(|e| e.person_id))
            .await?;
        let mut outbox = Vec::new();
        for e in &escalated {
            let event = EventRow {
                id: Uuid::now_v7(),
                alert_id: e.id,
                at: now,
                staff_id: None,
                kind: if e.again {
                    CaseEventKind::EscalatedAgain
                } else {
                    CaseEventKind::Escalated
                },
                detail_enc: None,
            };
            insert_event(&mut tx, &event).await?;
            let duty = notify(e);
            // In the audit too, as Avisa's own act, for the consulate's
            // supervisors (and CIAM's) to see.
            let audit = "INSERT INTO audit_log (at, staff_id, staff_username, consulate_id, \
                         alert_id, action, detail) VALUES ($1, NULL, 'avisa', $2, $3, $4, $5)";
            let detail = format!("{}{} SMS", if e.again { "again, " } else { "" }, duty.len());
            db_run!(&mut tx, |t| {
                sqlx::query(audit)
                    .bind(now)
                    .bind(e.consulate_id.as_deref().unwrap_or(avisa_core::CIAM))
                    .bind(e.id)
                    .bind(avisa_core::AuditAction::Escalate)
                    .bind(&detail)
                    .execute(&mut **t)
                    .await?;
            });
            for m in duty {
                outbox.push(self.outbox_row(&m, Some(e.id), now, &keys)?);
            }
        }
        crate::outbox::insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await?;
        Ok(escalated)
    }
}

impl Store {
    /// What each of an alert's own messages said and to which number, as
    /// the console shows them; text and number are None once retention
    /// erased them.
    pub async fn message_texts(&self, alert_id: Uuid) -> Result<Vec<SentMessage>, StoreError> {
        let sql = "SELECT id, body_enc, to_enc, sent_at, updated_at FROM outbox \
                   WHERE alert_id = $1 AND purpose = 'alert' ORDER BY rank, created_at, id";
        type Row = (Uuid, Vec<u8>, Vec<u8>, Option<UnixMillis>, UnixMillis);
        let rows: Vec<Row> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(alert_id).fetch_all(pool).await
        })?;
        let keys = self.load_keys(rows.iter().map(|r| r.2.as_slice())).await?;
        rows.into_iter()
            .map(|(id, body, to, sent_at, updated_at)| {
                let open = |field: &str, sealed: &[u8]| {
                    (!sealed.is_empty())
                        .then(|| keys.open_str(&aad(field, id), sealed))
                        .transpose()
                };
                Ok(SentMessage {
                    recipient_id: id,
                    text: open("outbox.body", &body)?,
                    to: open("outbox.to", &to)?,
                    sent_at,
                    updated_at,
                })
            })
            .collect()
    }

    /// The person's real alerts, newest first: for a case's "earlier
    /// alerts" (the caller keeps those in the staff member's scope).
    pub async fn person_alerts(
        &self,
        person_id: Uuid,
        limit: i64,
    ) -> Result<Vec<PersonAlert>, StoreError> {
        let sql = "SELECT id, consulate_id, case_number, created_at, state, case_state, outcome, \
                   outcome_enc FROM alerts WHERE person_id = $1 AND practice = $2 \
                   ORDER BY created_at DESC, id DESC LIMIT $3";
        type Row = (
            Uuid,
            Option<String>,
            Option<String>,
            UnixMillis,
            avisa_core::AlertState,
            CaseState,
            Option<Outcome>,
            Option<Vec<u8>>,
        );
        let rows: Vec<Row> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(person_id)
                .bind(false)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        let keys = self.load_people([person_id]).await?;
        rows.into_iter()
            .map(
                |(id, consulate_id, case_number, created_at, state, case_state, plain, sealed)| {
                    Ok(PersonAlert {
                        outcome: keys.outcome(id, sealed.as_deref(), plain)?,
                        id,
                        consulate_id,
                        case_number,
                        created_at,
                        state,
                        case_state,
                    })
                },
            )
            .collect()
    }
}
