//! Delivery receipts, and what silence means: a message a gateway took that
//! has no receipt of any kind within `sms.receipt_timeout` is "sin
//! confirmación", shown to the person and the console, and an alert message
//! in that state is sent once more by the next gateway (a Kannel that died
//! with messages in memory, a provider that lost one).

use avisa_core::{OutboxStatus, UnixMillis};
use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError};

/// What the silence check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unconfirmed {
    /// Messages newly without confirmation.
    pub marked: u64,
    /// Alert messages among them queued once more, by the next gateway.
    pub resent: u64,
    /// The alerts whose recipients changed (for live views).
    pub alerts: Vec<Uuid>,
}

impl Store {
    /// Keeps a receipt for a message that is back in the queue (its send
    /// timed out; the provider is still to be asked), to be applied when
    /// its send is recorded. A final status (delivered, failed) is not
    /// replaced by a later "sent". False when the message is not queued.
    pub async fn keep_receipt(
        &self,
        message_id: Uuid,
        provider_id: Option<&str>,
        status: OutboxStatus,
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let sql = "INSERT INTO kept_receipts (message_id, provider_id, status, reason, at) \
                   SELECT id, $2, $3, $4, $5 FROM outbox WHERE id = $1 AND status = 'queued' \
                   ON CONFLICT (message_id) DO UPDATE SET provider_id = excluded.provider_id, \
                   status = excluded.status, reason = excluded.reason, at = excluded.at \
                   WHERE kept_receipts.status = 'sent'";
        let n = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(message_id)
                .bind(provider_id.unwrap_or(""))
                .bind(status)
                .bind(reason)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Marks queued messages past their validity as expired; returns their
    /// alerts.
    pub async fn expire_due(&self, now: UnixMillis) -> Result<Vec<Uuid>, StoreError> {
        let sql = "UPDATE outbox SET status = 'expired', reason = 'not sent within its validity', \
                   updated_at = $1 WHERE status = 'queued' AND expires_at <= $1 RETURNING alert_id";
        let rows: Vec<Option<Uuid>> = db_run!(self.db.writer(), |pool| {
            sqlx::query_scalar(sql).bind(now).fetch_all(pool).await
        })?;
        let mut alerts: Vec<Uuid> = rows.into_iter().flatten().collect();
        alerts.sort();
        alerts.dedup();
        Ok(alerts)
    }

    /// A delivery receipt: moves a message to `status` when it is in one of
    /// `from`. Returns Some(its alert) when it changed a row.
    pub async fn receipt(
        &self,
        message_id: Uuid,
        provider_id: Option<&str>,
        status: OutboxStatus,
        from: &[OutboxStatus],
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<Option<Option<Uuid>>, StoreError> {
        // A "delivered" is good news from any copy of this message (the
        // callback's URL names it, and only the provider signs it): the
        // recipient has the text. Copies of one text to one number can trade
        // provider ids when two sends in doubt are found in the provider's
        // list by recipient and text, and a receipt must not be lost to
        // that. Any other status is matched by the pair: one copy's failure
        // says nothing of another's.
        let provider_id = provider_id.filter(|_| status != OutboxStatus::Delivered);
        // Any receipt confirms the message reached the provider's network,
        // whether or not it moves the status (a "sent" after "sent").
        let seen = "UPDATE outbox SET receipt_at = $2 WHERE id = $1 AND receipt_at IS NULL \
                    AND status IN ('sent', 'delivered', 'failed') \
                    AND (provider_id IS NULL OR provider_id = '' OR provider_id = $3 OR $3 = '')";
        let sid = provider_id.unwrap_or("").to_string();
        db_run!(self.db.writer(), |pool| {
            sqlx::query(seen)
                .bind(message_id)
                .bind(now)
                .bind(&sid)
                .execute(pool)
                .await?;
        });
        Ok(db_run!(self.db.writer(), |pool| {
            let mut b = sqlx::QueryBuilder::new("UPDATE outbox SET status = ");
            b.push_bind(status);
            b.push(", reason = COALESCE(");
            b.push_bind(reason);
            b.push(", reason), updated_at = ");
            b.push_bind(now);
            b.push(" WHERE id = ");
            b.push_bind(message_id);
            // Matched by the pair: a receipt for another copy of the message
            // (a provider id that is not the one recorded) changes nothing.
            if let Some(sid) = provider_id.filter(|p| !p.is_empty()) {
                b.push(" AND (provider_id IS NULL OR provider_id = '' OR provider_id = ");
                b.push_bind(sid.to_string());
                b.push(")");
            }
            b.push(" AND status IN (");
            let mut list = b.separated(", ");
            for f in from {
                list.push_bind(*f);
            }
            b.push(") RETURNING alert_id");
            b.build_query_scalar()
                .persistent(false)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A message's current status, the gateway that took it and the
    /// provider's id (tests, hooks).
    pub async fn message(
        &self,
        id: Uuid,
    ) -> Result<Option<(OutboxStatus, Option<String>, Option<String>)>, StoreError> {
        let sql = "SELECT status, gateway, provider_id FROM outbox WHERE id = $1";
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Which of these provider ids are already recorded for a message of
    /// ours (a message found in a provider's list is not this one then).
    pub async fn provider_ids_in_use(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let rows: Vec<String> = db_run!(self.db.reader(), |pool| {
            let mut b =
                sqlx::QueryBuilder::new("SELECT provider_id FROM outbox WHERE provider_id IN (");
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(id.clone());
            }
            b.push(")");
            b.build_query_scalar()
                .persistent(false)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Gives back to the queue every message recorded as a copy found at
    /// the provider (not sent by its own try) when another row holds the
    /// same copy: sent by another instance in the same moment, or found by
    /// it too (then the row recorded first keeps it). Such a message was
    /// never sent; asked about again, it finds the copy taken and is sent.
    /// Within one instance this cannot happen (see the dispatcher's
    /// `Copies`); across instances only this sweep catches it. Returns the
    /// alerts touched.
    pub async fn release_copies_taken_twice(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<Uuid>, StoreError> {
        let sql = "UPDATE outbox SET status = 'queued', provider_id = NULL, gateway = NULL, \
                   sent_at = NULL, found_in_doubt = $2, next_attempt_at = $1, lease_until = NULL, \
                   reason = 'the copy found at the provider was another message''s: asked again', \
                   updated_at = $1 \
                   WHERE found_in_doubt AND status = 'sent' AND receipt_at IS NULL \
                   AND EXISTS (SELECT 1 FROM outbox o WHERE o.provider_id = outbox.provider_id \
                     AND o.id <> outbox.id AND (NOT o.found_in_doubt OR o.sent_at < outbox.sent_at \
                       OR (o.sent_at = outbox.sent_at AND o.id < outbox.id))) \
                   RETURNING alert_id";
        let alerts: Vec<Option<Uuid>> = db_run!(self.db.writer(), |pool| {
            sqlx::query_scalar(sql)
                .bind(now)
                .bind(false)
                .fetch_all(pool)
                .await?
        });
        Ok(alerts.into_iter().flatten().collect())
    }

    /// Marks the messages taken by a gateway that reports receipts (all but
    /// `log`) before `cutoff` that never had one as without confirmation,
    /// and queues each such alert message of an alert still active once
    /// more, by the next gateway, unless it already was (never twice).
    /// Once across instances: each row changes in one statement.
    pub async fn mark_unconfirmed(
        &self,
        cutoff: UnixMillis,
        now: UnixMillis,
    ) -> Result<Unconfirmed, StoreError> {
        let mut tx = self.db.begin().await?;
        let mark = "UPDATE outbox SET unconfirmed_at = $1, updated_at = $1 \
                    WHERE status = 'sent' AND receipt_at IS NULL AND unconfirmed_at IS NULL \
                    AND sent_at <= $2 AND gateway <> 'log' RETURNING id, alert_id";
        let marked: Vec<(Uuid, Option<Uuid>)> = db_run!(&mut tx, |t| {
            sqlx::query_as(mark)
                .bind(now)
                .bind(cutoff)
                .fetch_all(&mut **t)
                .await?
        });
        let resend = "UPDATE outbox SET status = 'queued', next_attempt_at = $1, \
                      gateway_index = gateway_index + 1, resent_at = $1, lease_until = NULL, \
                      provider_id = NULL, updated_at = $1 \
                      WHERE unconfirmed_at = $1 AND resent_at IS NULL AND purpose = 'alert' \
                      AND status = 'sent' AND expires_at > $1 \
                      AND alert_id IN (SELECT id FROM alerts WHERE state = 'active') \
                      RETURNING id";
        let resent: Vec<Uuid> = if marked.is_empty() {
            Vec::new()
        } else {
            db_run!(&mut tx, |t| {
                sqlx::query_scalar(resend)
                    .bind(now)
                    .fetch_all(&mut **t)
                    .await?
            })
        };
        tx.commit().await?;
        let mut alerts: Vec<Uuid> = marked.iter().filter_map(|(_, a)| *a).collect();
        alerts.sort();
        alerts.dedup();
        Ok(Unconfirmed {
            marked: marked.len() as u64,
            resent: resent.len() as u64,
            alerts,
        })
    }
}

/// Receipts kept while their message was back in the queue
/// ([`Store::keep_receipt`]) applied to the messages now recorded sent (the
/// provider id must match, when both are known, but for "delivered": see
/// [`Store::receipt`]), then forgotten once their
/// message has left the queue. The table is almost always empty.
pub(crate) async fn apply_kept_receipts(tx: &mut crate::db::Tx) -> Result<Vec<Uuid>, StoreError> {
    let alerts: Vec<Option<Uuid>> = db_run!(&mut *tx, |t| {
        sqlx::query_scalar(
            "UPDATE outbox SET status = k.status, reason = COALESCE(k.reason, outbox.reason), \
             receipt_at = k.at, updated_at = k.at FROM kept_receipts k \
             WHERE k.message_id = outbox.id AND outbox.status = 'sent' \
             AND (k.status = 'delivered' OR k.provider_id = '' OR outbox.provider_id IS NULL \
                  OR outbox.provider_id = '' OR k.provider_id = outbox.provider_id) \
             RETURNING outbox.alert_id",
        )
        .fetch_all(&mut **t)
        .await?
    });
    db_run!(&mut *tx, |t| {
        sqlx::query(
            "DELETE FROM kept_receipts WHERE message_id IN \
             (SELECT id FROM outbox WHERE status NOT IN ('queued', 'sending'))",
        )
        .execute(&mut **t)
        .await?;
    });
    Ok(alerts.into_iter().flatten().collect())
}
