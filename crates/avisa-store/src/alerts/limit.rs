//! The person's alert limit, counted again where alerts are written: the
//! count a press reads first is the fast refusal; this one, inside the
//! group commit's transaction, is the one that holds under parallel
//! presses and across instances.

use std::collections::{HashMap, HashSet};

use avisa_core::UnixMillis;
use uuid::Uuid;

use avisa_core::CaseEventKind;

use super::SealedAlert;
use crate::console::cases::{EventRow, insert_event};
use crate::db::db_run;
use crate::{Store, StoreError};

impl Store {
    /// The person's contacts an alert of theirs raised since `since` has a
    /// message for that is not failed, expired or withdrawn: past the alert
    /// limit, these are not messaged again.
    pub async fn contacts_alerted_since(
        &self,
        person_id: Uuid,
        since: UnixMillis,
    ) -> Result<HashSet<Uuid>, StoreError> {
        let sql = "SELECT DISTINCT o.contact_id FROM outbox o JOIN alerts a ON a.id = o.alert_id \
                   WHERE a.person_id = $1 AND a.created_at >= $2 AND a.practice = $3 \
                   AND o.kind = 'contact' AND o.purpose = 'alert' AND o.contact_id IS NOT NULL \
                   AND o.status NOT IN ('failed', 'expired', 'withdrawn')";
        let ids: Vec<Uuid> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(person_id)
                .bind(since)
                .bind(false)
                .fetch_all(pool)
                .await?
        });
        Ok(ids.into_iter().collect())
    }

    /// Puts "límite de alertas alcanzado" on an alert's case timeline: it
    /// was raised past the person's limit, and reached fewer contacts.
    pub async fn note_limit_reached(
        &self,
        alert_id: Uuid,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        insert_event(
            &mut tx,
            &EventRow {
                id: Uuid::now_v7(),
                alert_id,
                at,
                staff_id: None,
                kind: CaseEventKind::LimitReached,
                detail_enc: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The alerts of a batch that would pass their person's limit, counted
    /// inside the transaction that writes them (each with when the oldest
    /// counted alert was raised). PostgreSQL locks the people's rows first,
    /// so presses written by other instances wait for this commit; SQLite's
    /// single writer already serialises it. An alert whose key was used
    /// before is never limited: it answers with the first alert.
    pub(super) async fn over_limit(
        &self,
        tx: &mut crate::db::Tx,
        batch: &[SealedAlert],
    ) -> Result<HashMap<Uuid, UnixMillis>, StoreError> {
        let mut limited = HashMap::new();
        let mut people: Vec<Uuid> = batch
            .iter()
            .filter(|a| a.limit.is_some())
            .map(|a| a.alert.person_id)
            .collect();
        let Some(since) = batch.iter().filter_map(|a| a.limit.map(|l| l.since)).min() else {
            return Ok(limited);
        };
        people.sort_unstable();
        people.dedup();
        let lock = matches!(self.db.dialect(), crate::db::Dialect::Postgres);
        // (person, practice) -> (alerts that count, the oldest's time): one
        // row per person from the index, never the alerts themselves (a
        // person pressing often must not make every commit read them all).
        // The window starts at the batch's earliest start: alerts of one
        // batch were raised within milliseconds of each other.
        let mut counted: HashMap<(Uuid, bool), (i64, Option<UnixMillis>)> = HashMap::new();
        for chunk in people.chunks(1000) {
            if lock {
                db_run!(&mut *tx, |t| {
                    let mut b = sqlx::QueryBuilder::new("SELECT id FROM people WHERE id IN (");
                    let mut list = b.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    b.push(") ORDER BY id FOR UPDATE");
                    b.build().persistent(false).execute(&mut **t).await?;
                });
            }
            let rows: Vec<(Uuid, bool, i64, Option<UnixMillis>)> = db_run!(&mut *tx, |t| {
                let mut b = sqlx::QueryBuilder::new(
                    "SELECT a.person_id, a.practice, COUNT(*), MIN(a.created_at) \
                     FROM alerts a WHERE a.person_id IN (",
                );
                let mut list = b.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                b.push(") AND a.created_at >= ");
                b.push_bind(since);
                b.push(" GROUP BY a.person_id, a.practice");
                b.build_query_as()
                    .persistent(false)
                    .fetch_all(&mut **t)
                    .await?
            });
            for (person, practice, count, oldest) in rows {
                counted.insert((person, practice), (count, oldest));
            }
        }
        // A key seen earlier in the batch is answered with that alert.
        let mut seen: HashSet<(Uuid, &str)> = HashSet::new();
        // The batch's keys counted so far, per (person, practice): at a
        // refusal those written before (a retry racing its first press)
        // are taken back out, so only alerts this commit creates count.
        let mut taken: HashMap<(Uuid, bool), Vec<&str>> = HashMap::new();
        for a in batch {
            let (Some(limit), row) = (a.limit, &a.alert) else {
                continue;
            };
            let key = row.idempotency_key.as_str();
            if !seen.insert((row.person_id, key)) {
                continue;
            }
            let slot = (row.person_id, row.practice);
            let (count, oldest) = counted.entry(slot).or_default();
            if *count >= limit.max {
                // Rare (a person at their limit): exact, key by key.
                let mine = taken.entry(slot).or_default();
                let mut kept = Vec::with_capacity(mine.len());
                for k in mine.drain(..) {
                    if key_used(tx, row.person_id, k).await? {
                        *count -= 1;
                    } else {
                        kept.push(k);
                    }
                }
                *mine = kept;
            }
            if *count < limit.max {
                *count += 1;
                oldest.get_or_insert(row.created_at);
                taken.entry(slot).or_default().push(key);
            } else if !key_used(tx, row.person_id, key).await? {
                // Full, and not a retry (ON CONFLICT answers a retry with
                // its first alert): refused.
                limited.insert(row.id, oldest.unwrap_or(row.created_at));
            }
        }
        Ok(limited)
    }
}

/// Whether the person already has an alert with this key.
async fn key_used(tx: &mut crate::db::Tx, person: Uuid, key: &str) -> Result<bool, StoreError> {
    let found: Option<i32> = db_run!(&mut *tx, |t| {
        sqlx::query_scalar("SELECT 1 FROM alerts WHERE person_id = $1 AND idempotency_key = $2")
            .bind(person)
            .bind(key)
            .fetch_optional(&mut **t)
            .await?
    });
    Ok(found.is_some())
}
