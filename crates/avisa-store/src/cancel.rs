//! Cancelling an alert, in one transaction each: with the PIN (what has not
//! gone is withdrawn, and everyone the alert reached hears "I'm safe"), or
//! with the duress PIN (nothing is withdrawn, the alert stays open and
//! flagged, and the contacts and the consulate hear the cancel was forced).

use avisa_core::{Language, MessageKind, PhoneNumber, Purpose, UnixMillis};
use uuid::Uuid;

use crate::db::db_run;
use crate::keys::Keys;
use crate::outbox::{NewMessage, OutboxRow, insert_outbox};
use crate::{Store, StoreError, aad};

impl Store {
    /// The follow-up of each of an alert's messages (an "I'm safe", or the
    /// notice of a forced cancel): to the same recipient, with the text
    /// `text` makes for its kind and language, sealed for the outbox.
    fn follow_ups(
        &self,
        (alert_id, owner, keys): (Uuid, Uuid, &Keys),
        parents: &[OutboxRow],
        text: &(dyn Fn(MessageKind, Language) -> String + Sync),
        rank: i32,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        parents
            .iter()
            .map(|parent| {
                let to = keys.open_str(&aad("outbox.to", parent.id), &parent.to_enc)?;
                // By the way the alert's message went, to the same recipient.
                let message = NewMessage::new(
                    parent.channel,
                    parent.kind,
                    Purpose::Safe,
                    PhoneNumber::from_e164_unchecked(to),
                    text(parent.kind, parent.language),
                    parent.language,
                    expires_at,
                )
                .owned_by(owner)
                .to_contact(parent.contact_id, keys.open_outbox_name(parent)?)
                .after(parent.id)
                .ranked(rank);
                self.outbox_row(&message, Some(alert_id), now, keys)
            })
            .collect()
    }

    /// Cancels an active alert in one transaction: withdraws what has not
    /// gone, and queues for every recipient the alert may have reached the
    /// text `safe_text` makes for them (by kind and language); with None
    /// (a practice's rehearsed "I'm safe") nobody is told anything. Returns
    /// the number withdrawn, or None when the alert was not active.
    pub async fn cancel_alert(
        &self,
        alert_id: Uuid,
        now: UnixMillis,
        expires_at: UnixMillis,
        safe_text: Option<&(dyn Fn(MessageKind, Language) -> String + Sync)>,
    ) -> Result<Option<u64>, StoreError> {
        // The person's key before the transaction (which holds SQLite's
        // writer): the follow-ups are sealed with it.
        let (owner, keys) = match self.alert_key(alert_id).await {
            Ok(key) => {
                let owner = Uuid::from_bytes(key.id());
                (owner, self.keys_of(owner, key))
            }
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut tx = self.db.begin().await?;
        let (cancelled, withdrawn, reached) = db_run!(&mut tx, |t| {
            let cancelled = sqlx::query(
                "UPDATE alerts SET state = 'cancelled', cancelled_at = $1, updated_at = $1 \
                 WHERE id = $2 AND state = 'active'",
            )
            .bind(now)
            .bind(alert_id)
            .execute(&mut **t)
            .await?
            .rows_affected();
            if cancelled != 1 {
                (false, 0, Vec::new())
            } else {
                let withdrawn = sqlx::query(
                    "UPDATE outbox SET status = 'withdrawn', reason = 'cancelled', updated_at = $1 \
                     WHERE alert_id = $2 AND purpose IN ('alert', 'update') AND status = 'queued'",
                )
                .bind(now)
                .bind(alert_id)
                .execute(&mut **t)
                .await?
                .rows_affected();
                let reached: Vec<OutboxRow> = sqlx::query_as(
                    "SELECT * FROM outbox WHERE alert_id = $1 AND purpose = 'alert' \
                     AND status IN ('sending', 'sent', 'delivered') ORDER BY rank, created_at",
                )
                .bind(alert_id)
                .fetch_all(&mut **t)
                .await?;
                (true, withdrawn, reached)
            }
        });
        if !cancelled {
            return Ok(None);
        }
        if let Some(safe_text) = safe_text {
            let follow = self.follow_ups(
                (alert_id, owner, &keys),
                &reached,
                safe_text,
                0,
                expires_at,
                now,
            )?;
            insert_outbox(&mut tx, &follow).await?;
        }
        tx.commit().await?;
        Ok(Some(withdrawn))
    }

    /// The duress PIN's "cancel", in one transaction: the alert stays active
    /// and nothing is withdrawn; `duress_at` is set; every contact and the
    /// consulate (whatever their message's status) and the person's own
    /// phone (only when its confirmation went out, as after a real cancel)
    /// get the follow-up `notice` makes for them, queued after the alerts.
    /// Returns None when the alert was not active or already under duress,
    /// else the number of follow-ups.
    pub async fn duress_cancel(
        &self,
        alert_id: Uuid,
        now: UnixMillis,
        expires_at: UnixMillis,
        notice: &(dyn Fn(MessageKind, Language) -> String + Sync),
    ) -> Result<Option<usize>, StoreError> {
        let (owner, keys) = match self.alert_key(alert_id).await {
            Ok(key) => {
                let owner = Uuid::from_bytes(key.id());
                (owner, self.keys_of(owner, key))
            }
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut tx = self.db.begin().await?;
        if !mark_duress(&mut tx, alert_id, now).await? {
            return Ok(None);
        }
        let parents: Vec<OutboxRow> = db_run!(&mut tx, |t| {
            sqlx::query_as(
                "SELECT * FROM outbox WHERE alert_id = $1 AND purpose = 'alert' AND ( \
                   (kind <> 'self' AND status IN ('queued', 'sending', 'sent', 'delivered')) \
                   OR (kind = 'self' AND status IN ('sending', 'sent', 'delivered'))) \
                 ORDER BY rank, created_at",
            )
            .bind(alert_id)
            .fetch_all(&mut **t)
            .await?
        });
        let follow = self.follow_ups(
            (alert_id, owner, &keys),
            &parents,
            notice,
            crate::outbox::RANK_AFTER_ALERTS,
            expires_at,
            now,
        )?;
        insert_outbox(&mut tx, &follow).await?;
        tx.commit().await?;
        Ok(Some(follow.len()))
    }

    /// Flags an active alert as raised under duress, with no message of
    /// its own (a check-out forced with the duress PIN raises the alert in
    /// silence: the contacts get the alert itself, the consulate sees the
    /// flag). False when it was flagged already or is not active.
    pub async fn flag_duress(&self, alert_id: Uuid, now: UnixMillis) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        if !mark_duress(&mut tx, alert_id, now).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Marks an active alert as under duress, with its `duress` case event, in
/// the caller's transaction. False when it was not active or marked already.
async fn mark_duress(
    tx: &mut crate::db::Tx,
    alert_id: Uuid,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let marked = db_run!(&mut *tx, |t| {
        sqlx::query(
            "UPDATE alerts SET duress_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'active' AND duress_at IS NULL",
        )
        .bind(now)
        .bind(alert_id)
        .execute(&mut **t)
        .await?
        .rows_affected()
    });
    if marked != 1 {
        return Ok(false);
    }
    crate::console::cases::insert_event(
        tx,
        &crate::console::cases::EventRow {
            id: Uuid::now_v7(),
            alert_id,
            at: now,
            staff_id: None,
            kind: avisa_core::CaseEventKind::Duress,
            detail_enc: None,
        },
    )
    .await?;
    Ok(true)
}
