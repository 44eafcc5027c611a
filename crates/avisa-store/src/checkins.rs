//! Check-in timers: a person's planned appointment (an ICE check-in, a
//! court date) with a deadline to check out by. The server keeps them so
//! they fire when the phone is taken or off; the periodic job
//! (`avisa-server/src/checkins.rs`) raises the alert of each one due, with
//! an idempotency key of the timer's own, so it fires once across
//! instances and restarts. The place, the note and the location are sealed.

use avisa_core::{CheckinState, Location, UnixMillis};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::db_run;
use crate::keys::Keys;
use crate::{Store, StoreError, aad, seal_opt};

/// The most timers a person may have scheduled at once.
pub const MAX_SCHEDULED_CHECKINS: i64 = 10;

/// A timer to schedule.
#[derive(Debug, Clone)]
pub struct NewCheckin {
    pub person_id: Uuid,
    pub appointment_at: UnixMillis,
    pub deadline: UnixMillis,
    pub place: Option<String>,
    pub note: Option<String>,
    pub location: Option<Location>,
}

/// A timer as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkin {
    pub id: Uuid,
    pub person_id: Uuid,
    pub appointment_at: UnixMillis,
    pub deadline: UnixMillis,
    pub place: Option<String>,
    pub note: Option<String>,
    pub location: Option<Location>,
    pub state: CheckinState,
    pub reminded_at: Option<UnixMillis>,
    /// The alert it raised, once fired (or forced with the duress PIN).
    pub alert_id: Option<Uuid>,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone, FromRow)]
struct CheckinRow {
    id: Uuid,
    person_id: Uuid,
    appointment_at: UnixMillis,
    deadline: UnixMillis,
    place_enc: Option<Vec<u8>>,
    note_enc: Option<Vec<u8>>,
    location_enc: Option<Vec<u8>>,
    state: CheckinState,
    reminded_at: Option<UnixMillis>,
    alert_id: Option<Uuid>,
    created_at: UnixMillis,
}

impl Store {
    fn open_checkin(keys: &Keys, r: CheckinRow) -> Result<Checkin, StoreError> {
        let location = keys
            .open_opt(&aad("checkins.location", r.id), r.location_enc.as_deref())?
            .map(|text| {
                let mut parts = text.split(';').map(|p| p.parse::<f64>().ok());
                match (parts.next().flatten(), parts.next().flatten()) {
                    (Some(lat), Some(lon)) => Ok(Location {
                        lat,
                        lon,
                        accuracy_m: parts.next().flatten(),
                    }),
                    _ => Err(StoreError::Crypto(avisa_core::crypto::CryptoError::Open)),
                }
            })
            .transpose()?;
        Ok(Checkin {
            id: r.id,
            person_id: r.person_id,
            appointment_at: r.appointment_at,
            deadline: r.deadline,
            place: keys.open_opt(&aad("checkins.place", r.id), r.place_enc.as_deref())?,
            note: keys.open_opt(&aad("checkins.note", r.id), r.note_enc.as_deref())?,
            location,
            state: r.state,
            reminded_at: r.reminded_at,
            alert_id: r.alert_id,
            created_at: r.created_at,
        })
    }

    /// Schedules a timer; [`StoreError::LimitReached`] when the person has
    /// [`MAX_SCHEDULED_CHECKINS`] scheduled already (counted under a lock on
    /// the person, so parallel requests cannot pass it).
    pub async fn add_checkin(
        &self,
        new: &NewCheckin,
        now: UnixMillis,
    ) -> Result<Checkin, StoreError> {
        let id = Uuid::now_v7();
        let key = self.person_key(new.person_id).await?;
        let place = seal_opt(&key, &aad("checkins.place", id), new.place.as_deref())?;
        let note = seal_opt(&key, &aad("checkins.note", id), new.note.as_deref())?;
        let location = new
            .location
            .map(|l| {
                format!(
                    "{};{};{}",
                    l.lat,
                    l.lon,
                    l.accuracy_m.map(|a| a.to_string()).unwrap_or_default()
                )
            })
            .map(|text| key.seal(aad("checkins.location", id).as_bytes(), text.as_bytes()))
            .transpose()?;
        let lock_person = self.db.dialect().lock_person();
        let mut tx = self.db.begin().await?;
        let scheduled: i64 = db_run!(&mut tx, |t| {
            sqlx::query(lock_person)
                .bind(new.person_id)
                .execute(&mut **t)
                .await?;
            sqlx::query_scalar("SELECT COUNT(*) FROM checkins WHERE person_id = $1 AND state = $2")
                .bind(new.person_id)
                .bind(CheckinState::Scheduled)
                .fetch_one(&mut **t)
                .await?
        });
        if scheduled >= MAX_SCHEDULED_CHECKINS {
            return Err(StoreError::LimitReached);
        }
        let sql = "INSERT INTO checkins (id, person_id, appointment_at, deadline, place_enc, \
                   note_enc, location_enc, state, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
        db_run!(&mut tx, |t| {
            sqlx::query(sql)
                .bind(id)
                .bind(new.person_id)
                .bind(new.appointment_at)
                .bind(new.deadline)
                .bind(&place)
                .bind(&note)
                .bind(&location)
                .bind(CheckinState::Scheduled)
                .bind(now)
                .execute(&mut **t)
                .await?;
        });
        tx.commit().await?;
        Ok(Checkin {
            id,
            person_id: new.person_id,
            appointment_at: new.appointment_at,
            deadline: new.deadline,
            place: new.place.clone(),
            note: new.note.clone(),
            location: new.location,
            state: CheckinState::Scheduled,
            reminded_at: None,
            alert_id: None,
            created_at: now,
        })
    }

    /// A person's timers, newest first (at most 100).
    pub async fn checkins_of(&self, person_id: Uuid) -> Result<Vec<Checkin>, StoreError> {
        let sql = "SELECT id, person_id, appointment_at, deadline, place_enc, note_enc, \
                   location_enc, state, reminded_at, alert_id, created_at FROM checkins \
                   WHERE person_id = $1 ORDER BY created_at DESC LIMIT 100";
        let rows: Vec<CheckinRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(person_id).fetch_all(pool).await
        })?;
        let keys = self.load_people(rows.iter().map(|r| r.person_id)).await?;
        rows.into_iter()
            .map(|r| Self::open_checkin(&keys, r))
            .collect()
    }

    /// One timer of a person (None: not theirs, or no such timer).
    pub async fn checkin(&self, person_id: Uuid, id: Uuid) -> Result<Option<Checkin>, StoreError> {
        let sql = "SELECT id, person_id, appointment_at, deadline, place_enc, note_enc, \
                   location_enc, state, reminded_at, alert_id, created_at FROM checkins \
                   WHERE id = $1 AND person_id = $2";
        let row: Option<CheckinRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(id)
                .bind(person_id)
                .fetch_optional(pool)
                .await
        })?;
        let keys = self.load_people(row.iter().map(|r| r.person_id)).await?;
        row.map(|r| Self::open_checkin(&keys, r)).transpose()
    }

    /// The timer that raised an alert, if one did (the console shows the plan).
    pub async fn checkin_of_alert(&self, alert_id: Uuid) -> Result<Option<Checkin>, StoreError> {
        let sql = "SELECT id, person_id, appointment_at, deadline, place_enc, note_enc, \
                   location_enc, state, reminded_at, alert_id, created_at FROM checkins \
                   WHERE alert_id = $1";
        let row: Option<CheckinRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(alert_id)
                .fetch_optional(pool)
                .await
        })?;
        let keys = self.load_people(row.iter().map(|r| r.person_id)).await?;
        row.map(|r| Self::open_checkin(&keys, r)).transpose()
    }

    /// Moves a scheduled timer to `to` (checked out, cancelled, fired), with
    /// the alert it raised if any. False when it was no longer scheduled:
    /// whoever got there first decided.
    pub async fn end_checkin(
        &self,
        id: Uuid,
        to: CheckinState,
        alert_id: Option<Uuid>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE checkins SET state = $1, alert_id = COALESCE($2, alert_id), \
                   updated_at = $3 WHERE id = $4 AND state = $5";
        Ok(db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(to)
                .bind(alert_id)
                .bind(now)
                .bind(id)
                .bind(CheckinState::Scheduled)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// A new deadline for a scheduled timer (its reminder is owed again),
    /// with the alert a forced extension raised, if any. False when it was
    /// no longer scheduled.
    pub async fn extend_checkin(
        &self,
        id: Uuid,
        deadline: UnixMillis,
        alert_id: Option<Uuid>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE checkins SET deadline = $1, reminded_at = NULL, updated_at = $2, \
                   alert_id = COALESCE($5, alert_id) WHERE id = $3 AND state = $4";
        Ok(db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(deadline)
                .bind(now)
                .bind(id)
                .bind(CheckinState::Scheduled)
                .bind(alert_id)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Scheduled timers whose deadline has come, oldest deadline first.
    pub async fn due_checkins(
        &self,
        now: UnixMillis,
        limit: i64,
    ) -> Result<Vec<Checkin>, StoreError> {
        let sql = "SELECT id, person_id, appointment_at, deadline, place_enc, note_enc, \
                   location_enc, state, reminded_at, alert_id, created_at FROM checkins \
                   WHERE state = $1 AND deadline <= $2 ORDER BY deadline LIMIT $3";
        let rows: Vec<CheckinRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(CheckinState::Scheduled)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        let keys = self.load_people(rows.iter().map(|r| r.person_id)).await?;
        rows.into_iter()
            .map(|r| Self::open_checkin(&keys, r))
            .collect()
    }

    /// Takes the scheduled timers whose reminder is due (deadline within
    /// `ahead` ms, not reminded yet), marking them reminded in the same
    /// statement, so each reminder goes once across instances.
    pub async fn take_reminders(
        &self,
        now: UnixMillis,
        ahead: i64,
        limit: i64,
    ) -> Result<Vec<(Uuid, Uuid, UnixMillis)>, StoreError> {
        let sql = "UPDATE checkins SET reminded_at = $1 WHERE id IN ( \
                   SELECT id FROM checkins WHERE state = $2 AND reminded_at IS NULL \
                   AND deadline > $1 AND deadline <= $3 ORDER BY deadline LIMIT $4) \
                   AND reminded_at IS NULL RETURNING id, person_id, deadline";
        Ok(db_run!(self.db.writer(), |pool| {
            sqlx::query_as(sql)
                .bind(now)
                .bind(CheckinState::Scheduled)
                .bind(now + ahead)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?)
    }
}
