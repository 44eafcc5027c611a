//! Writing a batch of sealed alerts in one transaction (the group commit):
//! the person's limit counted again, their SMS budget taken, the case
//! numbers given, the first
//! duty SMS sealed with its number, then the locations and the outbox.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{Inserted, SealedAlert};
use crate::db::db_run;
use crate::outbox::insert_outbox;
use crate::{Store, StoreError};

impl Store {
    /// Writes sealed alerts in one transaction; durable when this returns.
    /// An alert whose (person, idempotency key) exists is skipped, with the
    /// first alert's id returned.
    pub async fn insert_alerts(&self, all: &[SealedAlert]) -> Result<Vec<Inserted>, StoreError> {
        Ok(self
            .insert_alerts_numbered(all)
            .await?
            .into_iter()
            .map(|(inserted, _)| inserted)
            .collect())
    }

    /// [`Store::insert_alerts`], with the case number each created alert
    /// got (the writer puts it in the texts it hands the dispatcher).
    pub async fn insert_alerts_numbered(
        &self,
        all: &[SealedAlert],
    ) -> Result<Vec<(Inserted, Option<String>)>, StoreError> {
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.begin().await?;
        let limited = self.over_limit(&mut tx, all).await?;
        // The person's SMS budget, taken here rather than in a commit of
        // each press's own (which bounded presses by one commit each).
        let mut spent = HashSet::new();
        for a in all.iter().filter(|a| !limited.contains_key(&a.alert.id)) {
            if let Some(units) = &a.budget
                && Store::take_units_in(&mut tx, units).await?.is_some()
            {
                spent.insert(a.alert.id);
            }
        }
        let batch: Vec<&SealedAlert> = all
            .iter()
            .filter(|a| !limited.contains_key(&a.alert.id) && !spent.contains(&a.alert.id))
            .collect();
        let mut created = HashSet::new();
        // 13 columns x 1,000 alerts stays under every bind limit.
        for chunk in batch.chunks(1000) {
            let ids: Vec<Uuid> = db_run!(&mut tx, |t| {
                let mut b = sqlx::QueryBuilder::new(
                    "INSERT INTO alerts (id, person_id, device_id, idempotency_key, source, \
                     practice, state, consulate_id, coverage, created_at, cancelled_at, \
                     updated_at, caller_enc) ",
                );
                b.push_values(chunk.iter().copied(), |mut v, a| {
                    let a = &a.alert;
                    v.push_bind(a.id)
                        .push_bind(a.person_id)
                        .push_bind(a.device_id)
                        .push_bind(&a.idempotency_key)
                        .push_bind(a.source)
                        .push_bind(a.practice)
                        .push_bind(a.state)
                        .push_bind(&a.consulate_id)
                        .push_bind(a.coverage)
                        .push_bind(a.created_at)
                        .push_bind(a.cancelled_at)
                        .push_bind(a.updated_at)
                        .push_bind(&a.caller_enc);
                });
                // A reused key inserts nothing: the first alert stands.
                b.push(" ON CONFLICT (person_id, idempotency_key) DO NOTHING RETURNING id");
                b.build_query_scalar()
                    .persistent(false)
                    .fetch_all(&mut **t)
                    .await?
            });
            created.extend(ids);
        }
        let to_number: Vec<(Uuid, &str)> = batch
            .iter()
            .filter(|a| created.contains(&a.alert.id))
            .filter_map(|a| a.case_prefix.as_deref().map(|p| (a.alert.id, p)))
            .collect();
        let numbers: HashMap<Uuid, String> = if to_number.is_empty() {
            HashMap::new()
        } else {
            self.number_cases(&mut tx, &to_number).await?
        };
        let mut results = Vec::with_capacity(all.len());
        let mut locations = Vec::new();
        let mut outbox = Vec::new();
        for a in all {
            if let Some(&oldest) = limited.get(&a.alert.id) {
                results.push((Inserted::Limited { oldest }, None));
            } else if spent.contains(&a.alert.id) {
                results.push((Inserted::OverBudget, None));
            } else if created.contains(&a.alert.id) {
                let number = numbers.get(&a.alert.id).cloned();
                locations.extend(a.location.iter());
                let mut rows = a.outbox.clone();
                if let Some(number) = &number {
                    for s in &a.slotted {
                        if let Some(row) = rows.get_mut(s.index) {
                            self.fill_slot(&a.key, row, &s.text, number)?;
                        }
                    }
                }
                outbox.extend(rows);
                results.push((Inserted::Created(a.alert.id), number));
            } else {
                let sql = "SELECT id FROM alerts WHERE person_id = $1 AND idempotency_key = $2";
                let id: Uuid = db_run!(&mut tx, |t| {
                    sqlx::query_scalar(sql)
                        .bind(a.alert.person_id)
                        .bind(&a.alert.idempotency_key)
                        .fetch_one(&mut **t)
                        .await?
                });
                results.push((Inserted::Existing(id), None));
            }
        }
        for chunk in locations.chunks(1000) {
            db_run!(&mut tx, |t| {
                let mut b = sqlx::QueryBuilder::new(
                    "INSERT INTO alert_locations (id, alert_id, location_enc, created_at) ",
                );
                b.push_values(chunk, |mut v, l| {
                    v.push_bind(l.id)
                        .push_bind(l.alert_id)
                        .push_bind(&l.location_enc)
                        .push_bind(l.created_at);
                });
                b.build().persistent(false).execute(&mut **t).await?;
            });
        }
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await?;
        Ok(results)
    }
}
