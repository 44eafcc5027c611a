//! An alert's location trail: the points the phone sends while the alert is
//! active (sealed like every location), and the "nueva ubicación" SMS that
//! contacts who chose them receive.

use avisa_core::{CaseEventKind, Location, Purpose, UnixMillis};
use uuid::Uuid;

use super::LocationRow;
use crate::db::db_run;
use crate::keys::Keys;
use crate::outbox::{NewMessage, insert_outbox};
use crate::{Store, StoreError, aad};

/// One point of a trail, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    pub location: Location,
    pub at: UnixMillis,
    /// Too far from the point before for the time between them: kept, and
    /// flagged for the console, never dropped.
    pub implausible: bool,
}

impl Store {
    /// Appends to an alert's location trail. A point for a case staff had
    /// resolved reopens it, on the timeline (the phone still moving after
    /// "false alarm" may be a person in danger): true when it did.
    pub async fn add_location(
        &self,
        alert_id: Uuid,
        loc: &Location,
        now: UnixMillis,
        implausible: bool,
    ) -> Result<bool, StoreError> {
        let key = self.alert_key(alert_id).await?;
        let l = Self::location_row(&key, alert_id, loc, now)?;
        let sql = "INSERT INTO alert_locations (id, alert_id, location_enc, created_at, \
                   implausible) VALUES ($1, $2, $3, $4, $5)";
        let mut tx = self.db.begin().await?;
        db_run!(&mut tx, |t| {
            sqlx::query(sql)
                .bind(l.id)
                .bind(l.alert_id)
                .bind(&l.location_enc)
                .bind(l.created_at)
                .bind(implausible)
                .execute(&mut **t)
                .await?;
        });
        let reopen = "UPDATE alerts SET case_state = CASE WHEN acknowledged_at IS NULL \
                      THEN 'new' ELSE 'acknowledged' END, resolved_at = NULL, outcome = NULL, \
                      outcome_enc = NULL, outcome_detail_enc = NULL \
                      WHERE id = $1 AND case_state = 'resolved' AND practice = $2";
        let reopened = db_run!(&mut tx, |t| {
            sqlx::query(reopen)
                .bind(alert_id)
                .bind(false)
                .execute(&mut **t)
                .await?
                .rows_affected()
        }) == 1;
        if reopened {
            let id = Uuid::now_v7();
            let event = crate::console::cases::EventRow {
                id,
                alert_id,
                at: now,
                staff_id: None,
                kind: CaseEventKind::Reopened,
                detail_enc: Some(
                    key.seal(aad("alert_events.detail", id).as_bytes(), b"new_location")?,
                ),
            };
            crate::console::cases::insert_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(reopened)
    }

    /// How many points an alert's trail holds, and its newest point.
    pub async fn trail_state(&self, alert_id: Uuid) -> Result<(i64, Option<Fix>), StoreError> {
        let sql = "SELECT COUNT(*) FROM alert_locations WHERE alert_id = $1";
        let count: i64 = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql).bind(alert_id).fetch_one(pool).await
        })?;
        let sql = "SELECT * FROM alert_locations WHERE alert_id = $1 \
                   ORDER BY created_at DESC, id DESC LIMIT 1";
        let newest: Option<LocationRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(alert_id)
                .fetch_optional(pool)
                .await
        })?;
        let keys = self
            .load_keys(newest.iter().map(|l| l.location_enc.as_slice()))
            .await?;
        Ok((count, newest.map(|l| fix(&keys, &l)).transpose()?))
    }
}

fn fix(keys: &Keys, row: &LocationRow) -> Result<Fix, StoreError> {
    Ok(Fix {
        location: keys.open_location(row)?,
        at: row.created_at,
        implausible: row.implausible,
    })
}

impl Store {
    /// Every point of an alert's trail, oldest first.
    pub async fn trail(&self, alert_id: Uuid) -> Result<Vec<Fix>, StoreError> {
        let sql = "SELECT * FROM alert_locations WHERE alert_id = $1 ORDER BY created_at, id";
        let rows: Vec<LocationRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(alert_id).fetch_all(pool).await
        })?;
        let keys = self
            .load_keys(rows.iter().map(|l| l.location_enc.as_slice()))
            .await?;
        rows.iter().map(|l| fix(&keys, l)).collect()
    }

    /// The newest location of any of the person's alerts.
    pub async fn last_location(&self, person_id: Uuid) -> Result<Option<Location>, StoreError> {
        let sql = "SELECT l.* FROM alert_locations l JOIN alerts a ON a.id = l.alert_id \
                   WHERE a.person_id = $1 ORDER BY l.created_at DESC, l.id DESC LIMIT 1";
        let row: Option<LocationRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(person_id)
                .fetch_optional(pool)
                .await
        })?;
        let keys = self
            .load_keys(row.iter().map(|l| l.location_enc.as_slice()))
            .await?;
        row.map(|l| keys.open_location(&l)).transpose()
    }

    /// The "nueva ubicación" SMS an alert has owed a contact so far: how
    /// many, and when the last was written.
    pub async fn updates_sent(
        &self,
        alert_id: Uuid,
        contact_id: Uuid,
    ) -> Result<(i64, Option<UnixMillis>), StoreError> {
        let sql = "SELECT COUNT(*), MAX(created_at) FROM outbox \
                   WHERE alert_id = $1 AND contact_id = $2 AND purpose = $3";
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(alert_id)
                .bind(contact_id)
                .bind(Purpose::Update)
                .fetch_one(pool)
                .await
        })?)
    }

    /// Queues messages that belong to an alert (a cancel withdraws them
    /// while they wait).
    pub async fn enqueue_for_alert(
        &self,
        alert_id: Uuid,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let keys = self.owners_keys(messages).await?;
        let rows = messages
            .iter()
            .map(|m| self.outbox_row(m, Some(alert_id), now, &keys))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut tx = self.db.begin().await?;
        insert_outbox(&mut tx, &rows).await?;
        tx.commit().await
    }

    /// Records that the person stopped sharing their location (`forced`:
    /// with the duress PIN), on the case's timeline.
    pub async fn stop_sharing(
        &self,
        alert_id: Uuid,
        forced: bool,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        crate::console::cases::insert_event(
            &mut tx,
            &crate::console::cases::EventRow {
                id: Uuid::now_v7(),
                alert_id,
                at: now,
                staff_id: None,
                kind: if forced {
                    CaseEventKind::SharingForced
                } else {
                    CaseEventKind::SharingStopped
                },
                detail_enc: None,
            },
        )
        .await?;
        tx.commit().await
    }

    /// Whether the person stopped sharing this alert's location with their
    /// PIN (a stop with the duress PIN does not count).
    pub async fn sharing_stopped(&self, alert_id: Uuid) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM alert_events WHERE alert_id = $1 AND kind = $2";
        let n: i64 = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(alert_id)
                .bind(CaseEventKind::SharingStopped)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }
}
