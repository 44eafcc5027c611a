//! The audit log (append-only: the database refuses changes and deletions)
//! and the figures for statistics.

use avisa_core::{AuditAction, UnixMillis};
use sqlx::{FromRow, Row};
use uuid::Uuid;

use super::cases::CaseRow;
use super::{AuditEntry, Staff, StatRow};
use crate::alerts::AlertRow;
use crate::db::db_run;
use crate::{Store, StoreError};

#[derive(Debug, Clone, FromRow)]
struct AuditRow {
    id: i64,
    at: UnixMillis,
    staff_username: String,
    consulate_id: String,
    alert_id: Option<Uuid>,
    action: AuditAction,
    detail: Option<String>,
}

impl Store {
    /// Writes what a staff member did.
    pub async fn audit(
        &self,
        staff: &Staff,
        alert_id: Option<Uuid>,
        action: AuditAction,
        detail: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO audit_log (at, staff_id, staff_username, consulate_id, alert_id, \
                   action, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(now)
                .bind(staff.id)
                .bind(&staff.username)
                .bind(&staff.consulate_id)
                .bind(alert_id)
                .bind(action)
                .bind(detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The newest entries, of one alert and/or one consulate: a
    /// consulate's are its own staff's and everyone's on its cases (CIAM's
    /// work, and refused attempts by other offices), with each case's
    /// number; its own staff's refused tries on another consulate's cases
    /// without the case.
    pub async fn audit_log(
        &self,
        alert_id: Option<Uuid>,
        consulate_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        type Line = (AuditRow, Option<String>, Option<String>);
        let rows: Vec<Line> = db_run!(self.db.reader(), |pool| {
            let mut b = sqlx::QueryBuilder::new(
                "SELECT l.*, a.case_number, a.consulate_id AS alert_consulate FROM audit_log l \
                 LEFT JOIN alerts a ON a.id = l.alert_id WHERE 1 = 1",
            );
            if let Some(id) = alert_id {
                b.push(" AND l.alert_id = ").push_bind(id);
            }
            if let Some(c) = consulate_id {
                b.push(" AND (l.consulate_id = ").push_bind(c);
                b.push(" OR a.consulate_id = ").push_bind(c);
                b.push(")");
            }
            b.push(" ORDER BY l.id DESC LIMIT ").push_bind(limit);
            let mut rows = Vec::new();
            for r in b.build().persistent(false).fetch_all(pool).await? {
                rows.push((
                    AuditRow::from_row(&r)?,
                    r.try_get("case_number")?,
                    r.try_get("alert_consulate")?,
                ));
            }
            rows
        });
        Ok(rows
            .into_iter()
            .map(|(a, case_number, alert_consulate)| {
                // One's own staff's refused try on another consulate's case
                // is shown without the case: its id or number would tell a
                // real alert there from a missing one.
                let foreign = consulate_id.is_some_and(|scope| {
                    alert_consulate
                        .as_deref()
                        .is_some_and(|owner| owner != scope)
                });
                AuditEntry {
                    case_number: case_number.filter(|_| !foreign),
                    id: a.id,
                    at: a.at,
                    staff_username: a.staff_username,
                    consulate_id: a.consulate_id,
                    alert_id: a.alert_id.filter(|_| !foreign),
                    action: a.action,
                    detail: a.detail,
                }
            })
            .collect())
    }

    /// Real alerts created in [from, to), for statistics.
    pub async fn stat_rows(
        &self,
        consulate_id: Option<&str>,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<StatRow>, StoreError> {
        let rows: Vec<(AlertRow, CaseRow)> = db_run!(self.db.reader(), |pool| {
            let mut b = sqlx::QueryBuilder::new("SELECT * FROM alerts WHERE practice = ");
            b.push_bind(false);
            b.push(" AND created_at >= ").push_bind(from);
            b.push(" AND created_at < ").push_bind(to);
            if let Some(c) = consulate_id {
                b.push(" AND consulate_id = ").push_bind(c);
            }
            b.push(" ORDER BY created_at");
            let mut rows = Vec::new();
            for r in b.build().persistent(false).fetch_all(pool).await? {
                rows.push((AlertRow::from_row(&r)?, CaseRow::from_row(&r)?));
            }
            rows
        });
        // Only outcomes are opened: the keys of the people with one.
        let keys = self
            .load_keys(rows.iter().filter_map(|(_, c)| c.outcome_enc.as_deref()))
            .await?;
        rows.into_iter()
            .map(|(a, c)| {
                Ok(StatRow {
                    outcome: keys.outcome(a.id, c.outcome_enc.as_deref(), c.outcome)?,
                    case_number: a.case_number,
                    created_at: a.created_at,
                    consulate_id: a.consulate_id,
                    acknowledged_at: c.acknowledged_at,
                    cancelled: a.state == avisa_core::AlertState::Cancelled,
                })
            })
            .collect()
    }
}
