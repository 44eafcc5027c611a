//! The person's alert limit, counted again where alerts are written: the
//! count a press reads first is the fast refusal; this one, inside the
//! group commit's transaction, is the one that holds under parallel
//! presses and across instances.

use std::collections::{HashMap, HashSet};

use avisa_core::UnixMillis;
use uuid::Uuid;

use super::SealedAlert;
use crate::db::db_run;
use crate::{Store, StoreError};

impl Store {
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
        // (person, practice) -> times of the alerts that count, oldest first.
        let mut counted: HashMap<(Uuid, bool), Vec<UnixMillis>> = HashMap::new();
        // Keys this batch reuses (written before, or twice in the batch).
        let mut keys: HashSet<(Uuid, &str)> = HashSet::new();
        let mut batch_keys: HashMap<Uuid, Vec<&str>> = HashMap::new();
        for a in batch {
            batch_keys
                .entry(a.alert.person_id)
                .or_default()
                .push(a.alert.idempotency_key.as_str());
        }
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
            let rows: Vec<(Uuid, bool, UnixMillis, String)> = db_run!(&mut *tx, |t| {
                let mut b = sqlx::QueryBuilder::new(
                    "SELECT a.person_id, a.practice, a.created_at, a.idempotency_key \
                     FROM alerts a WHERE a.person_id IN (",
                );
                let mut list = b.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                b.push(") AND a.created_at >= ");
                b.push_bind(since);
                b.push(" AND (a.practice OR a.state = 'active')");
                b.build_query_as()
                    .persistent(false)
                    .fetch_all(&mut **t)
                    .await?
            });
            for (person, practice, at, key) in rows {
                counted.entry((person, practice)).or_default().push(at);
                if let Some(&reused) = batch_keys
                    .get(&person)
                    .and_then(|ks| ks.iter().find(|k| **k == key))
                {
                    keys.insert((person, reused));
                }
            }
        }
        for times in counted.values_mut() {
            times.sort_unstable();
        }
        for a in batch {
            let (Some(limit), row) = (a.limit, &a.alert) else {
                continue;
            };
            // A reused key (written before or earlier in this batch) is
            // answered with its first alert and counts nothing.
            if !keys.insert((row.person_id, row.idempotency_key.as_str())) {
                continue;
            }
            let times = counted.entry((row.person_id, row.practice)).or_default();
            let within: Vec<UnixMillis> = times
                .iter()
                .copied()
                .filter(|&at| at >= limit.since)
                .collect();
            if within.len() as i64 >= limit.max {
                limited.insert(row.id, within.first().copied().unwrap_or(row.created_at));
            } else {
                times.push(row.created_at);
            }
        }
        Ok(limited)
    }
}
