//! The outbox: every SMS Avisa owes, from the commit that owes it to the
//! gateway's verdict and the delivery receipt. Recipient, name and text are
//! sealed; a row is never deleted by the dispatch, only moved between
//! states, each change allowed only from the states it names so a late
//! update never undoes a receipt.

use std::sync::LazyLock;

use avisa_core::{Channel, Language, MessageKind, OutboxStatus, PhoneNumber, Purpose, UnixMillis};
use sqlx::{AssertSqlSafe, FromRow};
use uuid::Uuid;

use crate::db::{Dialect, Tx, db_run};
use crate::keys::Keys;
use crate::{Store, StoreError, aad};

mod apply;
use apply::apply_in;

/// Rows per multi-row INSERT: 26 columns x 400 rows stays under SQLite's
/// 32,766 bound parameters. (Smaller chunks looked faster for accepting alone,
/// but a group commit then holds the single SQLite writer longer and the
/// dispatcher fell behind at 1,000 alerts/s: see BENCHMARKS.md.) Statements
/// built with a varying number of rows are not kept prepared
/// (`persistent(false)`): each row count would be a distinct cached
/// statement, and a large one holds megabytes.
pub(crate) const OUTBOX_CHUNK: usize = 400;

/// The fairness rank of messages that belong to no alert (verification
/// codes, replies, change notices): after every message of every alert (an
/// alert's messages rank 0 to its number of contacts), so no code ever waits
/// ahead of an alert, and such a message gives way to an alert committed
/// while it waits for a capped gateway.
pub const RANK_AFTER_ALERTS: i32 = 100;

/// One message to queue. Made by [`NewMessage::new`] (the struct cannot be
/// written out elsewhere), then said whose it is, to which contact, after
/// which message, at which rank: what is not said is the safe default (
/// nobody's, after every alert's messages).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewMessage {
    pub id: Uuid,
    /// The person the message is about, whose key seals it (so deleting
    /// them makes it unreadable); None for a message that is nobody's yet
    /// (a code to a phone being registered, a reply to an unknown number).
    pub owner: Option<Uuid>,
    pub kind: MessageKind,
    pub purpose: Purpose,
    /// How it goes: only gateways that carry this channel send it.
    pub channel: Channel,
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

impl NewMessage {
    /// A message by `channel` to `to`, valid until `expires_at`: nobody's,
    /// to no contact, after every alert's messages
    /// ([`RANK_AFTER_ALERTS`]) until said otherwise.
    pub fn new(
        channel: Channel,
        kind: MessageKind,
        purpose: Purpose,
        to: PhoneNumber,
        body: String,
        language: Language,
        expires_at: UnixMillis,
    ) -> NewMessage {
        NewMessage {
            id: Uuid::now_v7(),
            owner: None,
            kind,
            purpose,
            channel,
            contact_id: None,
            parent_id: None,
            name: None,
            to,
            body,
            language,
            rank: RANK_AFTER_ALERTS,
            expires_at,
        }
    }

    /// About this person, sealed with their key.
    pub fn owned_by(mut self, person: Uuid) -> NewMessage {
        self.owner = Some(person);
        self
    }

    /// To one of the person's contacts (and the name it is shown with).
    pub fn to_contact(mut self, contact: Option<Uuid>, name: Option<String>) -> NewMessage {
        self.contact_id = contact;
        self.name = name;
        self
    }

    /// Shown with this name (an office's).
    pub fn named(mut self, name: String) -> NewMessage {
        self.name = Some(name);
        self
    }

    /// A follow-up of `parent`: it waits while the parent is in flight.
    pub fn after(mut self, parent: Uuid) -> NewMessage {
        self.parent_id = Some(parent);
        self
    }

    /// At this fairness rank (an alert's own messages rank from 0).
    pub fn ranked(mut self, rank: i32) -> NewMessage {
        self.rank = rank;
        self
    }
}

/// A message claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub alert_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub purpose: Purpose,
    pub channel: Channel,
    pub to: PhoneNumber,
    pub body: String,
    pub attempts: i32,
    pub gateway_index: i32,
    pub permanent_failures: i32,
    pub expires_at: UnixMillis,
    pub rank: i32,
    /// When a send of it timed out after the request went: the gateway is
    /// asked whether it has it before it is sent again.
    pub in_doubt_since: Option<UnixMillis>,
}

/// A change to a message after a send attempt. Each applies only from the
/// states it names, so a late update never undoes a receipt.
#[derive(Debug, Clone)]
pub enum OutboxUpdate {
    /// The gateway took it (from `sending`; a receipt that came first wins).
    Sent {
        id: Uuid,
        gateway: String,
        provider_id: String,
        at: UnixMillis,
        /// Sent although an earlier try may have reached a provider (it
        /// could not be asked within the in-doubt window): marked, as a
        /// resend for want of a receipt is, so the console says it may
        /// arrive twice.
        possible_duplicate: bool,
        /// Not sent by this try: the provider's copy found for a message in
        /// doubt. Should another row hold the same copy, this one goes back
        /// to the queue (see [`crate::Store::release_copies_taken_twice`]).
        found: bool,
    },
    /// Try again later, maybe on another gateway (from `sending`).
    Retry {
        id: Uuid,
        next_attempt_at: UnixMillis,
        gateway_index: i32,
        permanent_failures: i32,
        reason: String,
        at: UnixMillis,
        /// This try timed out after the request went: when it started (see
        /// [`Claimed::in_doubt_since`]); the first such time is kept.
        in_doubt: Option<UnixMillis>,
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

/// An outbox row, sealed.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct OutboxRow {
    pub id: Uuid,
    pub alert_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub kind: MessageKind,
    pub purpose: Purpose,
    pub channel: Channel,
    pub contact_id: Option<Uuid>,
    pub name_enc: Option<Vec<u8>>,
    pub to_enc: Vec<u8>,
    pub body_enc: Vec<u8>,
    pub language: Language,
    pub rank: i32,
    pub status: OutboxStatus,
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
    /// The first delivery receipt of any kind (`receipts.rs`).
    pub receipt_at: Option<UnixMillis>,
    /// No receipt within `sms.receipt_timeout`: "sin confirmación".
    pub unconfirmed_at: Option<UnixMillis>,
    /// Sent once more by the next gateway for want of a receipt.
    pub resent_at: Option<UnixMillis>,
    /// A send timed out after the request went (see [`Claimed`]).
    pub in_doubt_at: Option<UnixMillis>,
    /// The instance that holds it while `sending` (`instances.rs`).
    pub holder: Option<String>,
}

/// Leases up to $3 due messages until $1, by rank then age: the rows chosen
/// are the rows leased, in one statement. A follow-up waits while its parent
/// is still in flight.
fn claim_sql(dialect: Dialect) -> &'static str {
    fn build(skip_locked: &str) -> String {
        format!(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, \
               lease_until = $1, updated_at = $2, holder = $4 \
             WHERE id IN ( \
               SELECT o.id FROM outbox o \
               WHERE o.status = 'queued' AND o.next_attempt_at <= $2 \
                 AND (o.parent_id IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM outbox p WHERE p.id = o.parent_id \
                     AND p.status IN ('queued', 'sending'))) \
               ORDER BY o.rank, o.created_at \
               LIMIT $3 {skip_locked}) \
             RETURNING *"
        )
    }
    static SQLITE: LazyLock<String> = LazyLock::new(|| build(Dialect::Sqlite.skip_locked()));
    static POSTGRES: LazyLock<String> = LazyLock::new(|| build(Dialect::Postgres.skip_locked()));
    match dialect {
        Dialect::Sqlite => SQLITE.as_str(),
        Dialect::Postgres => POSTGRES.as_str(),
    }
}

/// Claims due messages in a transaction (see [`claim_sql`]).
async fn claim_in(
    tx: &mut Tx,
    dialect: Dialect,
    now: UnixMillis,
    limit: i64,
    (lease_until, holder): (UnixMillis, &str),
) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = AssertSqlSafe(claim_sql(dialect));
    let mut rows: Vec<OutboxRow> = db_run!(tx, |t| {
        sqlx::query_as(sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .bind(holder)
            .fetch_all(&mut **t)
            .await
    })?;
    rows.sort_by_key(|r| (r.rank, r.created_at));
    Ok(rows)
}

/// Multi-row INSERT of outbox rows, in chunks, in a transaction.
pub(crate) async fn insert_outbox(tx: &mut Tx, rows: &[OutboxRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(OUTBOX_CHUNK) {
        db_run!(&mut *tx, |t| {
            let mut b = sqlx::QueryBuilder::new(
                "INSERT INTO outbox (id, alert_id, parent_id, kind, purpose, contact_id, \
                 name_enc, to_enc, body_enc, language, rank, status, reason, attempts, \
                 gateway_index, permanent_failures, gateway, provider_id, next_attempt_at, \
                 lease_until, expires_at, created_at, sent_at, updated_at, holder, channel) ",
            );
            b.push_values(chunk, |mut v, o| {
                v.push_bind(o.id)
                    .push_bind(o.alert_id)
                    .push_bind(o.parent_id)
                    .push_bind(o.kind)
                    .push_bind(o.purpose)
                    .push_bind(o.contact_id)
                    .push_bind(&o.name_enc)
                    .push_bind(&o.to_enc)
                    .push_bind(&o.body_enc)
                    .push_bind(o.language)
                    .push_bind(o.rank)
                    .push_bind(o.status)
                    .push_bind(&o.reason)
                    .push_bind(o.attempts)
                    .push_bind(o.gateway_index)
                    .push_bind(o.permanent_failures)
                    .push_bind(&o.gateway)
                    .push_bind(&o.provider_id)
                    .push_bind(o.next_attempt_at)
                    .push_bind(o.lease_until)
                    .push_bind(o.expires_at)
                    .push_bind(o.created_at)
                    .push_bind(o.sent_at)
                    .push_bind(o.updated_at)
                    .push_bind(&o.holder)
                    .push_bind(o.channel);
            });
            b.build().persistent(false).execute(&mut **t).await?;
        });
    }
    Ok(())
}

impl Store {
    /// A message to queue, sealed, as its row.
    /// `keys` holds the message's owner's key ([`Store::owners_keys`]).
    pub(crate) fn outbox_row(
        &self,
        m: &NewMessage,
        alert_id: Option<Uuid>,
        now: UnixMillis,
        keys: &Keys,
    ) -> Result<OutboxRow, StoreError> {
        let id = m.id;
        let seal = |place: &str, text: &str| keys.seal(m.owner, &aad(place, id), text);
        Ok(OutboxRow {
            id,
            alert_id,
            parent_id: m.parent_id,
            kind: m.kind,
            purpose: m.purpose,
            channel: m.channel,
            contact_id: m.contact_id,
            name_enc: m
                .name
                .as_deref()
                .map(|n| seal("outbox.name", n))
                .transpose()?,
            to_enc: seal("outbox.to", m.to.as_str())?,
            body_enc: seal("outbox.body", &m.body)?,
            language: m.language,
            rank: m.rank,
            status: OutboxStatus::Queued,
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
            receipt_at: None,
            unconfirmed_at: None,
            resent_at: None,
            in_doubt_at: None,
            holder: None,
        })
    }

    /// Queues messages that belong to no alert (codes, replies).
    pub async fn enqueue(
        &self,
        messages: &[NewMessage],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.enqueue_at(messages, now, now).await
    }

    /// As [`Store::enqueue`], for messages not to be sent before `at`.
    pub async fn enqueue_at(
        &self,
        messages: &[NewMessage],
        now: UnixMillis,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        let keys = self.owners_keys(messages).await?;
        let rows = messages
            .iter()
            .map(|m| {
                let mut row = self.outbox_row(m, None, now, &keys)?;
                row.next_attempt_at = at;
                Ok(row)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut tx = self.db.begin().await?;
        insert_outbox(&mut tx, &rows).await?;
        tx.commit().await
    }

    /// Claims due messages, opened for sending.
    pub async fn claim(
        &self,
        now: UnixMillis,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut tx = self.db.begin().await?;
        let rows = claim_in(
            &mut tx,
            self.db.dialect(),
            now,
            limit,
            (now + lease_ms, &self.instance),
        )
        .await?;
        tx.commit().await?;
        self.open_claimed(rows).await
    }

    /// Records a round's outcomes and claims the next round, in one
    /// transaction (one commit on the writer for the end of a round and the
    /// start of the next). Returns the alerts touched and the new claims.
    pub async fn apply_then_claim(
        &self,
        updates: &[OutboxUpdate],
        now: UnixMillis,
        limit: i64,
        lease_ms: i64,
    ) -> Result<(Vec<Uuid>, Vec<Claimed>), StoreError> {
        let mut tx = self.db.begin().await?;
        let touched = apply_in(&mut tx, updates).await?;
        let rows = claim_in(
            &mut tx,
            self.db.dialect(),
            now,
            limit,
            (now + lease_ms, &self.instance),
        )
        .await?;
        tx.commit().await?;
        Ok((touched, self.open_claimed(rows).await?))
    }

    /// Claimed rows opened for sending. A row whose person was deleted
    /// while it waited (the database has no key of theirs, whatever this
    /// process's cache holds) is withdrawn, not sent.
    async fn open_claimed(&self, rows: Vec<OutboxRow>) -> Result<Vec<Claimed>, StoreError> {
        let keys = self
            .live_keys(rows.iter().map(|r| r.to_enc.as_slice()))
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut gone = Vec::new();
        for r in rows {
            if keys.gone(&r.to_enc) {
                gone.push(r.id);
                continue;
            }
            let to = keys.open_str(&aad("outbox.to", r.id), &r.to_enc)?;
            let body = keys.open_str(&aad("outbox.body", r.id), &r.body_enc)?;
            claimed.push(Claimed {
                to: PhoneNumber::from_e164_unchecked(to),
                body,
                id: r.id,
                alert_id: r.alert_id,
                parent_id: r.parent_id,
                purpose: r.purpose,
                channel: r.channel,
                attempts: r.attempts,
                gateway_index: r.gateway_index,
                permanent_failures: r.permanent_failures,
                expires_at: r.expires_at,
                rank: r.rank,
                in_doubt_since: r.in_doubt_at,
            });
        }
        if !gone.is_empty() {
            tracing::warn!(
                messages = gone.len(),
                "messages whose person was deleted withdrawn unsent"
            );
            let now = avisa_core::now_millis();
            let sql = "UPDATE outbox SET status = 'withdrawn', reason = 'deleted', \
                       lease_until = NULL, updated_at = $2 WHERE id = $1";
            for id in gone {
                db_run!(self.db.writer(), |pool| {
                    sqlx::query(sql)
                        .bind(id)
                        .bind(now)
                        .execute(pool)
                        .await
                        .map(|_| ())
                })?;
            }
        }
        Ok(claimed)
    }

    /// When the oldest alert message not yet taken by a gateway (queued,
    /// or being sent) was created; None when none waits. For the gauge an
    /// operator's alerting watches: an alert SMS waiting for minutes is the
    /// failure Avisa exists to prevent. Reads the waiting rows only (the
    /// partial indexes on `status`).
    pub async fn oldest_waiting_alert_message(&self) -> Result<Option<UnixMillis>, StoreError> {
        let sql = "SELECT MIN(created_at) FROM outbox \
                   WHERE status IN ('queued', 'sending') AND purpose = 'alert'";
        let oldest: Option<i64> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql).fetch_one(pool).await
        })?;
        Ok(oldest)
    }

    /// Messages waiting for gateway `gateway_index` (out of service for
    /// our credentials, now back) become due at once instead of when its
    /// pause would have ended. Returns how many.
    pub async fn due_now_on(&self, gateway_index: i32, now: UnixMillis) -> Result<u64, StoreError> {
        let done = db_run!(self.db.writer(), |pool| {
            sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1 \
                 WHERE status = 'queued' AND gateway_index = $2 AND next_attempt_at > $1",
            )
            .bind(now)
            .bind(gateway_index)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    /// The statuses of some messages (parents of claimed follow-ups).
    pub async fn message_statuses(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<(Uuid, OutboxStatus)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(db_run!(self.db.reader(), |pool| {
            let mut b = sqlx::QueryBuilder::new("SELECT id, status FROM outbox WHERE id IN (");
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            b.push(")");
            b.build_query_as().persistent(false).fetch_all(pool).await?
        }))
    }

    /// Applies send results in one transaction; returns the alerts touched.
    pub async fn apply(&self, updates: &[OutboxUpdate]) -> Result<Vec<Uuid>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.begin().await?;
        let touched = apply_in(&mut tx, updates).await?;
        tx.commit().await?;
        Ok(touched)
    }
}
