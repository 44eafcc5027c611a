//! Alerts and the outbox, in plain domain types.

use avisa_core::{Language, Location, PhoneNumber, UnixMillis};
use uuid::Uuid;

use crate::backend::{AlertInsert, AlertRow, LocationRow, OutboxRow, OutboxUpdate};
use crate::{Store, StoreError, aad};

pub use crate::backend::Inserted;

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Contact,
    /// The person's own phone.
    SelfPhone,
    /// A consulate's duty phone.
    Consulate,
    Verification,
    Reply,
}

/// Why a message exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Alert,
    /// "I'm safe", after a cancel.
    Safe,
    Code,
    Reply,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Contact => "contact",
            MessageKind::SelfPhone => "self",
            MessageKind::Consulate => "consulate",
            MessageKind::Verification => "verification",
            MessageKind::Reply => "reply",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "contact" => MessageKind::Contact,
            "self" => MessageKind::SelfPhone,
            "consulate" => MessageKind::Consulate,
            "verification" => MessageKind::Verification,
            _ => MessageKind::Reply,
        }
    }
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Alert => "alert",
            Purpose::Safe => "safe",
            Purpose::Code => "code",
            Purpose::Reply => "reply",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "alert" => Purpose::Alert,
            "safe" => Purpose::Safe,
            "code" => Purpose::Code,
            _ => Purpose::Reply,
        }
    }
}

/// One SMS to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub kind: MessageKind,
    pub purpose: Purpose,
    pub contact_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    /// Display name of the recipient (a contact's name, an office's name).
    pub name: Option<String>,
    pub to: PhoneNumber,
    pub body: String,
    pub language: Language,
    /// Fairness rank: every rank-0 message of every alert goes before any
    /// rank-1 message.
    pub rank: i32,
    pub expires_at: UnixMillis,
}

/// Where an alert's routing landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    Nearest,
    HomeCounty,
    HomeState,
    Outside,
    None,
}

impl Coverage {
    pub fn as_str(self) -> &'static str {
        match self {
            Coverage::Nearest => "nearest",
            Coverage::HomeCounty => "home_county",
            Coverage::HomeState => "home_state",
            Coverage::Outside => "outside",
            Coverage::None => "none",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "nearest" => Coverage::Nearest,
            "home_county" => Coverage::HomeCounty,
            "home_state" => Coverage::HomeState,
            "outside" => Coverage::Outside,
            _ => Coverage::None,
        }
    }
}

/// An alert to store, with every message it owes.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub id: Uuid,
    pub person_id: Uuid,
    pub device_id: Option<Uuid>,
    pub idempotency_key: String,
    /// "app" or "sms".
    pub source: &'static str,
    pub practice: bool,
    pub consulate_id: Option<String>,
    pub coverage: Coverage,
    pub location: Option<Location>,
    pub created_at: UnixMillis,
    pub messages: Vec<NewMessage>,
}

impl NewAlert {
    /// Its messages as the dispatcher takes them when they are committed
    /// already leased (see [`AlertInsert::lease_outbox`]): the text still in
    /// memory, one attempt counted, as a claim would leave them.
    pub fn leased_messages(&self) -> Vec<Claimed> {
        self.messages
            .iter()
            .map(|m| Claimed {
                id: m.id,
                alert_id: Some(self.id),
                parent_id: m.parent_id,
                purpose: m.purpose,
                to: m.to.clone(),
                body: m.body.clone(),
                attempts: 1,
                gateway_index: 0,
                permanent_failures: 0,
                expires_at: m.expires_at,
                rank: m.rank,
            })
            .collect()
    }
}

/// A recipient as the person and the console see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub id: Uuid,
    pub kind: MessageKind,
    pub name: Option<String>,
    /// `queued` (also while being sent), `sent`, `delivered`, `failed`,
    /// `expired`, `withdrawn`.
    pub status: String,
    pub reason: Option<String>,
    pub language: Language,
    /// The status of the "I'm safe" that followed, after a cancel.
    pub safe_status: Option<String>,
}

/// An alert as it stands.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub id: Uuid,
    pub person_id: Uuid,
    pub state: String,
    pub practice: bool,
    pub source: String,
    pub consulate_id: Option<String>,
    pub coverage: Coverage,
    pub created_at: UnixMillis,
    pub cancelled_at: Option<UnixMillis>,
    /// The newest location.
    pub location: Option<Location>,
    pub recipients: Vec<Recipient>,
}

/// A message claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub alert_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub purpose: Purpose,
    pub to: PhoneNumber,
    pub body: String,
    pub attempts: i32,
    pub gateway_index: i32,
    pub permanent_failures: i32,
    pub expires_at: UnixMillis,
    pub rank: i32,
}

/// The API shows a message being handed to a gateway as still queued.
fn public_status(s: &str) -> String {
    if s == "sending" {
        "queued".into()
    } else {
        s.into()
    }
}

fn seal_location(store: &Store, place: &str, loc: &Location) -> Result<Vec<u8>, StoreError> {
    let text = format!(
        "{};{};{}",
        loc.lat,
        loc.lon,
        loc.accuracy_m.map(|a| a.to_string()).unwrap_or_default()
    );
    Ok(store.vault.seal_str(place, &text)?)
}

pub(crate) fn open_location(
    store: &Store,
    place: &str,
    sealed: &[u8],
) -> Result<Location, StoreError> {
    let text = store.vault.open_string(place, sealed)?;
    let mut parts = text.split(';');
    let num = |p: Option<&str>| p.and_then(|v| v.parse::<f64>().ok());
    let lat = num(parts.next());
    let lon = num(parts.next());
    let acc = num(parts.next());
    match (lat, lon) {
        (Some(lat), Some(lon)) => Ok(Location {
            lat,
            lon,
            accuracy_m: acc,
        }),
        _ => Err(StoreError::Crypto(avisa_core::crypto::CryptoError::Open)),
    }
}

impl Store {
    fn outbox_row(
        &self,
        m: &NewMessage,
        alert_id: Option<Uuid>,
        now: UnixMillis,
    ) -> Result<OutboxRow, StoreError> {
        let id = m.id;
        Ok(OutboxRow {
            id,
            alert_id,
            parent_id: m.parent_id,
            kind: m.kind.as_str().into(),
            purpose: m.purpose.as_str().into(),
            contact_id: m.contact_id,
            name_enc: m
                .name
                .as_deref()
                .map(|n| self.vault.seal_str(&aad("outbox.name", id), n))
                .transpose()?,
            to_enc: self.vault.seal_str(&aad("outbox.to", id), m.to.as_str())?,
            body_enc: self.vault.seal_str(&aad("outbox.body", id), &m.body)?,
            language: m.language.code().into(),
            rank: m.rank,
            status: "queued".into(),
            reason: None,
            attempts: 0,
            gateway_index: 0,
            permanent_failures: 0,
            gateway: None,
            provider_id: None,
            next_attempt_at: now,
            lease_until: None,
            expires_at: m.expires_at,
            created_at: now,
            sent_at: None,
            updated_at: now,
        })
    }

    /// Seals an alert's rows (CPU work, done by the caller's task so the
    /// group-commit writer only writes).
    pub fn seal_alert(&self, a: &NewAlert) -> Result<AlertInsert, StoreError> {
        let location = a
            .location
            .as_ref()
            .map(|loc| {
                let id = Uuid::now_v7();
                Ok::<_, StoreError>(LocationRow {
                    id,
                    alert_id: a.id,
                    location_enc: seal_location(self, &aad("alert_locations.location", id), loc)?,
                    created_at: a.created_at,
                })
            })
            .transpose()?;
        Ok(AlertInsert {
            alert: AlertRow {
                id: a.id,
                person_id: a.person_id,
                device_id: a.device_id,
                idempotency_key: a.idempotency_key.clone(),
                source: a.source.into(),
                practice: a.practice,
                state: "active".into(),
                consulate_id: a.consulate_id.clone(),
                coverage: a.coverage.as_str().into(),
                created_at: a.created_at,
                cancelled_at: None,
                updated_at: a.created_at,
            },
            location,
            outbox: a
                .messages
                .iter()
                .map(|m| self.outbox_row(m, Some(a.id), a.created_at))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Writes sealed alerts in one transaction; durable when this returns.
    pub async fn insert_alerts(&self, batch: &[AlertInsert]) -> Result<Vec<Inserted>, StoreError> {
        self.backend.alerts_insert(batch).await
    }

    /// The alert a key already made, and the person's alerts since a time.
    pub async fn key_and_recent(
        &self,
        person_id: Uuid,
        key: &str,
        since: UnixMillis,
    ) -> Result<(Option<Uuid>, i64), StoreError> {
        self.backend
            .alert_key_and_recent(person_id, key, since)
            .await
    }

    /// Real alerts of the person that are still active.
    pub async fn active_alerts(&self, person_id: Uuid) -> Result<i64, StoreError> {
        self.backend.alerts_active_count(person_id).await
    }

    /// An alert with its recipients and newest location.
    pub async fn alert(&self, id: Uuid) -> Result<Option<AlertView>, StoreError> {
        let Some(row) = self.backend.alert_get(id).await? else {
            return Ok(None);
        };
        let outbox = self.backend.alert_outbox(id).await?;
        let location = match self.backend.alert_latest_location(id).await? {
            Some(l) => Some(open_location(
                self,
                &aad("alert_locations.location", l.id),
                &l.location_enc,
            )?),
            None => None,
        };
        let mut recipients = Vec::new();
        for o in outbox.iter().filter(|o| o.purpose == "alert") {
            let safe_status = outbox
                .iter()
                .find(|s| s.purpose == "safe" && s.parent_id == Some(o.id))
                .map(|s| public_status(&s.status));
            recipients.push(Recipient {
                id: o.id,
                kind: MessageKind::parse(&o.kind),
                name: o
                    .name_enc
                    .as_deref()
                    .map(|n| self.vault.open_string(&aad("outbox.name", o.id), n))
                    .transpose()?,
                status: public_status(&o.status),
                reason: o.reason.clone(),
                language: Language::from_code(&o.language).unwrap_or_default(),
                safe_status,
            });
        }
        Ok(Some(AlertView {
            id,
            person_id: row.person_id,
            state: row.state,
            practice: row.practice,
            source: row.source,
            consulate_id: row.consulate_id,
            coverage: Coverage::parse(&row.coverage),
            created_at: row.created_at,
            cancelled_at: row.cancelled_at,
            location,
            recipients,
        }))
    }

    /// Appends to an alert's location trail.
    pub async fn add_location(
        &self,
        alert_id: Uuid,
        loc: &Location,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let id = Uuid::now_v7();
        self.backend
            .location_insert(&LocationRow {
                id,
                alert_id,
                location_enc: seal_location(self, &aad("alert_locations.location", id), loc)?,
                created_at: now,
            })
            .await
    }

    /// The newest location of any of the person's alerts.
    pub async fn last_location(&self, person_id: Uuid) -> Result<Option<Location>, StoreError> {
        match self.backend.person_latest_location(person_id).await? {
            Some(l) => Ok(Some(open_location(
                self,
                &aad("alert_locations.location", l.id),
                &l.location_enc,
            )?)),
            None => Ok(None),
        }
    }

    /// Cancels an active alert: withdraws what has not gone, and queues for
    /// every recipient the alert may have reached the text `safe_text` makes
    /// for them (by kind and language). Returns the number withdrawn, or
    /// None when the alert was not active.
    pub async fn cancel_alert(
        &self,
        alert_id: Uuid,
        now: UnixMillis,
        expires_at: UnixMillis,
        safe_text: &(dyn Fn(MessageKind, Language) -> String + Sync),
    ) -> Result<Option<u64>, StoreError> {
        let follow_up = |reached: &[OutboxRow]| -> Result<Vec<OutboxRow>, StoreError> {
            let mut rows = Vec::new();
            for parent in reached {
                let kind = MessageKind::parse(&parent.kind);
                let language = Language::from_code(&parent.language).unwrap_or_default();
                let to = self
                    .vault
                    .open_string(&aad("outbox.to", parent.id), &parent.to_enc)?;
                let name = parent
                    .name_enc
                    .as_deref()
                    .map(|n| self.vault.open_string(&aad("outbox.name", parent.id), n))
                    .transpose()?;
                let message = NewMessage {
                    id: Uuid::now_v7(),
                    kind,
                    purpose: Purpose::Safe,
                    contact_id: parent.contact_id,
                    parent_id: Some(parent.id),
                    name,
                    to: PhoneNumber::from_e164_unchecked(to),
                    body: safe_text(kind, language),
                    language,
                    rank: 0,
                    expires_at,
                };
                rows.push(self.outbox_row(&message, Some(alert_id), now)?);
            }
            Ok(rows)
        };
        self.backend.alert_cancel(alert_id, now, &follow_up).await
    }

    /// Queues messages that belong to no alert (codes, replies).
    pub async fn enqueue(
        &self,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let rows = messages
            .iter()
            .map(|m| self.outbox_row(m, None, now))
            .collect::<Result<Vec<_>, _>>()?;
        self.backend.outbox_insert(&rows).await
    }

    // ---- PIN lockout ---------------------------------------------------

    /// (failures so far, locked until) for the person's cancel PIN.
    pub async fn pin_state(
        &self,
        person_id: Uuid,
    ) -> Result<(i32, Option<UnixMillis>), StoreError> {
        self.backend.person_pin_state(person_id).await
    }

    pub async fn pin_failed(
        &self,
        person_id: Uuid,
        max: i32,
        lock_until: UnixMillis,
    ) -> Result<(i32, Option<UnixMillis>), StoreError> {
        self.backend
            .person_pin_failed(person_id, max, lock_until)
            .await
    }

    pub async fn pin_reset(&self, person_id: Uuid) -> Result<(), StoreError> {
        self.backend.person_pin_reset(person_id).await
    }

    /// The person with this (verified) phone number.
    pub async fn person_by_phone(
        &self,
        phone: &PhoneNumber,
    ) -> Result<Option<crate::Person>, StoreError> {
        match self
            .backend
            .person_by_phone_index(&self.phone_index(phone))
            .await?
        {
            Some(row) => self.person(row.id).await,
            None => Ok(None),
        }
    }

    // ---- dispatch ------------------------------------------------------

    /// Claims due messages, opened for sending.
    pub async fn claim(
        &self,
        now: UnixMillis,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let rows = self
            .backend
            .outbox_claim(now, limit, now + lease_ms)
            .await?;
        self.open_claimed(rows)
    }

    /// Records a round's outcomes and claims the next round, in one
    /// transaction. Returns the alerts touched and the new claims.
    pub async fn apply_then_claim(
        &self,
        updates: &[OutboxUpdate],
        now: UnixMillis,
        limit: i64,
        lease_ms: i64,
    ) -> Result<(Vec<Uuid>, Vec<Claimed>), StoreError> {
        let (touched, rows) = self
            .backend
            .outbox_apply_then_claim(updates, now, limit, now + lease_ms)
            .await?;
        Ok((touched, self.open_claimed(rows)?))
    }

    fn open_claimed(&self, rows: Vec<OutboxRow>) -> Result<Vec<Claimed>, StoreError> {
        rows.into_iter()
            .map(|r| {
                Ok(Claimed {
                    to: PhoneNumber::from_e164_unchecked(
                        self.vault.open_string(&aad("outbox.to", r.id), &r.to_enc)?,
                    ),
                    body: self
                        .vault
                        .open_string(&aad("outbox.body", r.id), &r.body_enc)?,
                    id: r.id,
                    alert_id: r.alert_id,
                    parent_id: r.parent_id,
                    purpose: Purpose::parse(&r.purpose),
                    attempts: r.attempts,
                    gateway_index: r.gateway_index,
                    permanent_failures: r.permanent_failures,
                    expires_at: r.expires_at,
                    rank: r.rank,
                })
            })
            .collect()
    }

    pub async fn message_statuses(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>, StoreError> {
        self.backend.outbox_statuses(ids).await
    }

    /// Applies send results in one transaction; returns the alerts touched.
    pub async fn apply(&self, updates: &[OutboxUpdate]) -> Result<Vec<Uuid>, StoreError> {
        self.backend.outbox_apply(updates).await
    }

    pub async fn reclaim_expired_leases(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.backend.outbox_reclaim(now).await
    }

    pub async fn expire_due(&self, now: UnixMillis) -> Result<Vec<Uuid>, StoreError> {
        self.backend.outbox_expire(now).await
    }

    /// Applies a delivery receipt; returns Some(alert) when it changed a row.
    pub async fn receipt(
        &self,
        message_id: Uuid,
        status: &str,
        from: &[&str],
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<Option<Option<Uuid>>, StoreError> {
        self.backend
            .outbox_receipt(message_id, status, from, reason, now)
            .await
    }

    /// A message's current status and the gateway that took it (tests, hooks).
    pub async fn message(
        &self,
        id: Uuid,
    ) -> Result<Option<(String, Option<String>, Option<String>)>, StoreError> {
        Ok(self
            .backend
            .outbox_get(id)
            .await?
            .map(|r| (r.status, r.gateway, r.provider_id)))
    }
}
