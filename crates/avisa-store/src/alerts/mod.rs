//! Alerts: a press with the messages it owes, written in one transaction
//! (group commit), its location trail (sealed), and what it looks like now.
//! Cancelling one is in `cancel.rs`.

mod case_number;
mod history;
mod insert;
mod limit;
mod trail;

pub use case_number::format_case_number;
pub use trail::Fix;

use std::sync::Arc;

use avisa_core::{
    AlertSource, AlertState, Coverage, Language, Location, MessageKind, OutboxStatus, PhoneNumber,
    Purpose, UnixMillis,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::db_run;
use crate::keys::{Keys, PersonKey};
use crate::outbox::{Claimed, NewMessage, OutboxRow};
use crate::{Store, StoreError, aad};
use avisa_core::crypto::FieldKey;
use avisa_core::messages::CASE_SLOT;

/// An alert to store, with every message it owes.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub id: Uuid,
    pub person_id: Uuid,
    pub device_id: Option<Uuid>,
    pub idempotency_key: String,
    pub source: AlertSource,
    pub practice: bool,
    pub consulate_id: Option<String>,
    pub coverage: Coverage,
    pub location: Option<Location>,
    /// The number it was raised from when not the person's own phone (the
    /// voice line, an SMS from another phone); sealed.
    pub caller: Option<PhoneNumber>,
    pub created_at: UnixMillis,
    pub messages: Vec<NewMessage>,
    /// The person's limit on alerts of this kind (practice or real), checked
    /// again inside the transaction that writes the alert, so parallel
    /// presses cannot all pass it; None: no limit.
    pub limit: Option<AlertLimit>,
    /// What its case number starts with ("LAX-2026": the office's code and
    /// its local year); None for practice, which is no case.
    pub case_prefix: Option<String>,
    /// The person's SMS budget its contacts' messages take, taken inside
    /// the transaction that writes the alert (all or none); when it is
    /// spent the alert is not written ([`Inserted::OverBudget`]) and the
    /// press is raised again without its contacts. None: nothing to take.
    pub budget: Option<crate::BudgetUnits>,
}

/// At most `max` alerts of a kind counted since `since` (practice presses,
/// and real alerts still active; see [`crate::people::recent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertLimit {
    pub since: UnixMillis,
    pub max: i64,
}

impl NewAlert {
    /// Its messages as the dispatcher takes them when they are committed
    /// already leased (see [`SealedAlert::lease_outbox`]): the text still in
    /// memory, one attempt counted, as a claim would leave them.
    pub fn leased_messages(&self) -> Vec<Claimed> {
        self.messages
            .iter()
            .map(|m| Claimed {
                id: m.id,
                alert_id: Some(self.id),
                parent_id: m.parent_id,
                purpose: m.purpose,
                channel: m.channel,
                to: m.to.clone(),
                body: m.body.clone(),
                attempts: 1,
                gateway_index: 0,
                permanent_failures: 0,
                expires_at: m.expires_at,
                rank: m.rank,
                in_doubt_since: None,
            })
            .collect()
    }
}

/// An alert sealed for writing ([`Store::seal_alert`]): the CPU work done by
/// the press's own task, so the group-commit writer only writes.
#[derive(Debug, Clone)]
pub struct SealedAlert {
    alert: AlertRow,
    location: Option<LocationRow>,
    outbox: Vec<OutboxRow>,
    limit: Option<AlertLimit>,
    case_prefix: Option<String>,
    budget: Option<crate::BudgetUnits>,
    /// Messages whose text names the case number, not known yet.
    slotted: Vec<case_number::Slotted>,
    /// The person's key, to seal the case number into those texts.
    key: Arc<FieldKey>,
}

impl SealedAlert {
    /// Writes the messages already claimed until `lease_until`, as
    /// [`Store::claim`] would leave them: for a dispatcher in the same
    /// process that takes their text from memory instead of claiming them.
    /// If that process dies first, the lease runs out and a sweep puts them
    /// back in the queue, like any claimed message.
    pub fn lease_outbox(&mut self, lease_until: UnixMillis, holder: &str) {
        for row in &mut self.outbox {
            row.status = OutboxStatus::Sending;
            row.attempts = 1;
            row.lease_until = Some(lease_until);
            row.holder = Some(holder.to_string());
        }
    }
}

/// What happened to one alert of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Created(Uuid),
    /// The idempotency key was already used: the first alert's id.
    Existing(Uuid),
    /// Not written: the person's limit was reached (by presses written
    /// since the caller counted). `oldest` is when the oldest counted alert
    /// was raised: a place frees when it leaves the window.
    Limited {
        oldest: UnixMillis,
    },
    /// Not written: the person's SMS budget could not pay for its
    /// contacts' messages ([`NewAlert::budget`]).
    OverBudget,
}

/// A recipient as the person and the console see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub id: Uuid,
    pub kind: MessageKind,
    pub name: Option<String>,
    /// As shown: `sending` reads as `queued`.
    pub status: OutboxStatus,
    pub reason: Option<String>,
    pub language: Language,
    /// The status of the "I'm safe" that followed, after a cancel.
    pub safe_status: Option<OutboxStatus>,
    /// Taken by a gateway, and no receipt of any kind within
    /// `sms.receipt_timeout`: "sin confirmación".
    pub unconfirmed: bool,
    /// Sent once more by the next gateway for want of a receipt: the
    /// recipient may get it twice.
    pub resent: bool,
}

/// A person's real alerts still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveAlerts {
    /// Every active one, those under duress included.
    pub active: i64,
    /// Those "cancelled" with the duress PIN (active for the consulate).
    pub under_duress: i64,
}

/// An alert as it stands.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub id: Uuid,
    pub person_id: Uuid,
    /// The phone that raised it (None when raised by SMS, a call or a
    /// check-in timer).
    pub device_id: Option<Uuid>,
    pub state: AlertState,
    pub practice: bool,
    pub source: AlertSource,
    pub consulate_id: Option<String>,
    pub coverage: Coverage,
    pub created_at: UnixMillis,
    pub cancelled_at: Option<UnixMillis>,
    /// When the person "cancelled" with the duress PIN: the alert stays
    /// active for the consulate and looks cancelled on the person's phone.
    pub duress_at: Option<UnixMillis>,
    /// When consulate staff took the case.
    pub acknowledged_at: Option<UnixMillis>,
    /// The newest location.
    pub location: Option<Location>,
    /// The number it was raised from, when not the person's own phone.
    pub caller: Option<String>,
    /// "LAX-2026-0042"; None for practice and alerts from before numbers.
    pub case_number: Option<String>,
    pub recipients: Vec<Recipient>,
}

/// Who may see an alert in the console: its consulate's staff (and CIAM),
/// unless it is practice.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AlertScope {
    pub consulate_id: Option<String>,
    pub practice: bool,
}

impl AlertView {
    pub fn scope(&self) -> AlertScope {
        AlertScope {
            consulate_id: self.consulate_id.clone(),
            practice: self.practice,
        }
    }
}

/// An alert's own columns (`SELECT *` also brings the case's, read apart).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct AlertRow {
    pub id: Uuid,
    pub person_id: Uuid,
    pub device_id: Option<Uuid>,
    pub idempotency_key: String,
    pub source: AlertSource,
    pub practice: bool,
    pub state: AlertState,
    pub consulate_id: Option<String>,
    pub coverage: Coverage,
    pub created_at: UnixMillis,
    pub cancelled_at: Option<UnixMillis>,
    pub updated_at: UnixMillis,
    pub duress_at: Option<UnixMillis>,
    /// When consulate staff took the case (a case column, read here for the
    /// person's status screen).
    pub acknowledged_at: Option<UnixMillis>,
    /// The calling number, sealed (see [`NewAlert::caller`]).
    pub caller_enc: Option<Vec<u8>>,
    /// Given in the transaction that writes the alert.
    pub case_number: Option<String>,
}

/// One point of a trail, sealed.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct LocationRow {
    pub id: Uuid,
    pub alert_id: Uuid,
    pub location_enc: Vec<u8>,
    pub created_at: UnixMillis,
    /// Too far from the point before for the time between them.
    pub implausible: bool,
}

impl Store {
    fn seal_location(key: &FieldKey, id: Uuid, loc: &Location) -> Result<Vec<u8>, StoreError> {
        let text = format!(
            "{};{};{}",
            loc.lat,
            loc.lon,
            loc.accuracy_m.map(|a| a.to_string()).unwrap_or_default()
        );
        Ok(key.seal(
            aad("alert_locations.location", id).as_bytes(),
            text.as_bytes(),
        )?)
    }
}

impl Keys {
    pub(crate) fn open_location(&self, row: &LocationRow) -> Result<Location, StoreError> {
        let text = self.open_str(&aad("alert_locations.location", row.id), &row.location_enc)?;
        let mut parts = text.split(';');
        let num = |p: Option<&str>| p.and_then(|v| v.parse::<f64>().ok());
        match (num(parts.next()), num(parts.next())) {
            (Some(lat), Some(lon)) => Ok(Location {
                lat,
                lon,
                accuracy_m: num(parts.next()),
            }),
            _ => Err(StoreError::Crypto(avisa_core::crypto::CryptoError::Open)),
        }
    }
}

impl Store {
    pub(crate) fn location_row(
        key: &FieldKey,
        alert_id: Uuid,
        loc: &Location,
        at: UnixMillis,
    ) -> Result<LocationRow, StoreError> {
        let id = Uuid::now_v7();
        Ok(LocationRow {
            id,
            alert_id,
            location_enc: Self::seal_location(key, id, loc)?,
            created_at: at,
            implausible: false,
        })
    }

    /// Seals an alert's rows (CPU work, done by the caller's task so the
    /// group-commit writer only writes).
    /// `key` is the person's, as their lookup handed it out
    /// ([`crate::Person::key`]).
    pub fn seal_alert(&self, a: &NewAlert, key: &PersonKey) -> Result<SealedAlert, StoreError> {
        if key.0.id() != *a.person_id.as_bytes() {
            return Err(StoreError::Crypto(avisa_core::crypto::CryptoError::Open));
        }
        let key = key.0.clone();
        let keys = self.keys_of(a.person_id, key.clone());
        Ok(SealedAlert {
            alert: AlertRow {
                id: a.id,
                person_id: a.person_id,
                device_id: a.device_id,
                idempotency_key: a.idempotency_key.clone(),
                source: a.source,
                practice: a.practice,
                state: AlertState::Active,
                consulate_id: a.consulate_id.clone(),
                coverage: a.coverage,
                created_at: a.created_at,
                cancelled_at: None,
                updated_at: a.created_at,
                duress_at: None,
                acknowledged_at: None,
                caller_enc: a
                    .caller
                    .as_ref()
                    .map(|c| key.seal(aad("alerts.caller", a.id).as_bytes(), c.as_str().as_bytes()))
                    .transpose()?,
                case_number: None,
            },
            location: a
                .location
                .as_ref()
                .map(|loc| Self::location_row(&key, a.id, loc, a.created_at))
                .transpose()?,
            outbox: a
                .messages
                .iter()
                .map(|m| {
                    if !m.body.contains(CASE_SLOT) {
                        return self.outbox_row(m, Some(a.id), a.created_at, &keys);
                    }
                    // Sealed with the id's start for now: what stays if the
                    // alert gets no number.
                    let mut m = m.clone();
                    m.body = m.body.replace(CASE_SLOT, &a.id.simple().to_string()[..8]);
                    self.outbox_row(&m, Some(a.id), a.created_at, &keys)
                })
                .collect::<Result<_, _>>()?,
            limit: a.limit,
            case_prefix: a.case_prefix.clone(),
            budget: a.budget.clone(),
            slotted: a
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| a.case_prefix.is_some() && m.body.contains(CASE_SLOT))
                .map(|(index, m)| case_number::Slotted {
                    index,
                    text: m.body.clone(),
                })
                .collect(),
            key,
        })
    }

    /// The alert a key already made, and the person's alerts since a time
    /// that count against a press of this kind (practice or real).
    pub async fn key_and_recent(
        &self,
        person_id: Uuid,
        key: &str,
        since: UnixMillis,
        practice: bool,
    ) -> Result<(Option<Uuid>, i64), StoreError> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT \
                 (SELECT a.id FROM alerts a WHERE a.person_id = $1 AND a.idempotency_key = $2), \
                 (SELECT COUNT(*) FROM alerts a WHERE a.person_id = $1 AND {})",
                crate::people::recent("$3", "$4")
            )
        });
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.as_str()))
                .bind(person_id)
                .bind(key)
                .bind(since)
                .bind(practice)
                .fetch_one(pool)
                .await
        })?)
    }

    /// When the oldest alert that counts against a press of this kind since
    /// `since` was raised (the limit frees a place when it leaves the
    /// window). Read only when the limit is reached.
    pub async fn oldest_recent(
        &self,
        person_id: Uuid,
        since: UnixMillis,
        practice: bool,
    ) -> Result<Option<UnixMillis>, StoreError> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT MIN(a.created_at) FROM alerts a WHERE a.person_id = $1 AND {}",
                crate::people::recent("$2", "$3")
            )
        });
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(SQL.as_str()))
                .bind(person_id)
                .bind(since)
                .bind(practice)
                .fetch_one(pool)
                .await
        })?)
    }

    /// Real alerts of the person that are still active.
    pub async fn active_alerts(&self, person_id: Uuid) -> Result<ActiveAlerts, StoreError> {
        let sql = "SELECT COUNT(*), COUNT(duress_at) FROM alerts \
                   WHERE person_id = $1 AND state = $2 AND practice = $3";
        let (active, under_duress): (i64, i64) = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(person_id)
                .bind(AlertState::Active)
                .bind(false)
                .fetch_one(pool)
                .await
        })?;
        Ok(ActiveAlerts {
            active,
            under_duress,
        })
    }

    /// An alert's scope alone (live console streams filter by it).
    pub async fn alert_scope(&self, id: Uuid) -> Result<Option<AlertScope>, StoreError> {
        let sql = "SELECT consulate_id, practice FROM alerts WHERE id = $1";
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })?)
    }

    pub(crate) async fn alert_row(&self, id: Uuid) -> Result<Option<AlertRow>, StoreError> {
        let sql = "SELECT * FROM alerts WHERE id = $1";
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Whose an alert is, and whether it is practice: one small indexed
    /// read, the same for an alert that exists and one that does not (the
    /// console's scope check answers both alike, also in time).
    pub async fn alert_owner(&self, id: Uuid) -> Result<Option<crate::AlertOwner>, StoreError> {
        let sql = "SELECT consulate_id, practice FROM alerts WHERE id = $1";
        let row: Option<(Option<String>, bool)> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(row.map(|(consulate_id, practice)| crate::AlertOwner {
            consulate_id,
            practice,
        }))
    }

    /// An alert with its recipients and newest location.
    pub async fn alert(&self, id: Uuid) -> Result<Option<AlertView>, StoreError> {
        let Some(row) = self.alert_row(id).await? else {
            return Ok(None);
        };
        let sql = "SELECT * FROM outbox WHERE alert_id = $1 ORDER BY rank, created_at, id";
        let outbox: Vec<OutboxRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_all(pool).await
        })?;
        let sql = "SELECT * FROM alert_locations WHERE alert_id = $1 \
                   ORDER BY created_at DESC, id DESC LIMIT 1";
        let latest: Option<LocationRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })?;
        let keys = self.load_people([row.person_id]).await?;
        let caller = keys.open_caller(&row)?;
        let mut recipients = Vec::new();
        for o in outbox.iter().filter(|o| o.purpose == Purpose::Alert) {
            let safe_status = outbox
                .iter()
                .find(|s| s.purpose == Purpose::Safe && s.parent_id == Some(o.id))
                .map(|s| s.status.public());
            recipients.push(Recipient {
                id: o.id,
                kind: o.kind,
                name: keys.open_outbox_name(o)?,
                status: o.status.public(),
                reason: o.reason.clone(),
                language: o.language,
                safe_status,
                unconfirmed: o.unconfirmed_at.is_some()
                    && o.receipt_at.is_none()
                    && o.status == OutboxStatus::Sent,
                resent: o.resent_at.is_some(),
            });
        }
        Ok(Some(AlertView {
            id,
            person_id: row.person_id,
            device_id: row.device_id,
            state: row.state,
            practice: row.practice,
            source: row.source,
            consulate_id: row.consulate_id,
            coverage: row.coverage,
            created_at: row.created_at,
            cancelled_at: row.cancelled_at,
            duress_at: row.duress_at,
            acknowledged_at: row.acknowledged_at,
            location: latest.map(|l| keys.open_location(&l)).transpose()?,
            caller,
            case_number: row.case_number,
            recipients,
        }))
    }
}

impl Keys {
    pub(crate) fn open_caller(&self, row: &AlertRow) -> Result<Option<String>, StoreError> {
        row.caller_enc
            .as_deref()
            .map(|c| self.open_str(&aad("alerts.caller", row.id), c))
            .transpose()
    }

    pub(crate) fn open_outbox_name(&self, o: &OutboxRow) -> Result<Option<String>, StoreError> {
        o.name_enc
            .as_deref()
            .map(|n| self.open_str(&aad("outbox.name", o.id), n))
            .transpose()
    }
}
