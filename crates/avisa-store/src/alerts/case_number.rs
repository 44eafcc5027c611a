//! Case numbers staff can say ("LAX-2026-0042"): one counter per consulate
//! code and local year, advanced in the transaction that writes the alerts,
//! so numbers are unique across instances and follow the order alerts were
//! written. The first duty SMS, written before its alert had a number,
//! carries [`avisa_core::messages::CASE_SLOT`]; its text is sealed here with
//! the number in it.

use std::collections::HashMap;

use avisa_core::crypto::{FieldKey, sealed_key_id};
use avisa_core::messages::CASE_SLOT;
use uuid::Uuid;

use crate::db::{Tx, db_run};
use crate::outbox::OutboxRow;
use crate::{Store, StoreError, aad};

/// A duty SMS whose text waits for its alert's case number: the row's
/// index among the alert's messages and its text with the slot.
#[derive(Debug, Clone)]
pub(crate) struct Slotted {
    pub index: usize,
    pub text: String,
}

/// `prefix` ("LAX-2026") and the counter's value as a case number.
pub fn format_case_number(prefix: &str, n: i64) -> String {
    format!("{prefix}-{n:04}")
}

impl Store {
    /// Gives each alert (id, prefix), in order, the next number of its
    /// prefix and writes it on the alert.
    pub(crate) async fn number_cases(
        &self,
        tx: &mut Tx,
        alerts: &[(Uuid, &str)],
    ) -> Result<HashMap<Uuid, String>, StoreError> {
        let mut counts: Vec<(&str, i64)> = Vec::new();
        for (_, prefix) in alerts {
            match counts.iter_mut().find(|(p, _)| p == prefix) {
                Some((_, n)) => *n += 1,
                None => counts.push((prefix, 1)),
            }
        }
        // Every batch locks its counters in one order, by prefix: batches
        // of several instances numbering the same offices in different
        // orders deadlocked each other on PostgreSQL (issue 37).
        counts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut next: HashMap<&str, i64> = HashMap::new();
        for (prefix, n) in counts {
            let sql = "INSERT INTO case_counters (prefix, last) VALUES ($1, $2) \
                       ON CONFLICT (prefix) DO UPDATE SET last = case_counters.last + excluded.last \
                       RETURNING last";
            let last: i64 = db_run!(&mut *tx, |t| {
                sqlx::query_scalar(sql)
                    .bind(prefix)
                    .bind(n)
                    .fetch_one(&mut **t)
                    .await?
            });
            next.insert(prefix, last - n + 1);
        }
        let mut numbers = HashMap::with_capacity(alerts.len());
        for (id, prefix) in alerts {
            let n = next.get_mut(prefix).ok_or(StoreError::NotFound)?;
            let number = format_case_number(prefix, *n);
            *n += 1;
            let sql = "UPDATE alerts SET case_number = $1 WHERE id = $2";
            db_run!(&mut *tx, |t| {
                sqlx::query(sql)
                    .bind(&number)
                    .bind(*id)
                    .execute(&mut **t)
                    .await?;
            });
            numbers.insert(*id, number);
        }
        Ok(numbers)
    }

    /// The duty SMS row with its case number sealed into its text.
    /// Sealed as the row's other fields are: with the person's `key`, or
    /// with the root key for a message that belongs to nobody.
    pub(crate) fn fill_slot(
        &self,
        key: &FieldKey,
        row: &mut OutboxRow,
        text: &str,
        number: &str,
    ) -> Result<(), StoreError> {
        let place = aad("outbox.body", row.id);
        let text = text.replace(CASE_SLOT, number);
        row.body_enc = match sealed_key_id(&row.to_enc) {
            Some(_) => key.seal(place.as_bytes(), text.as_bytes())?,
            None => self.vault.seal_str(&place, &text)?,
        };
        Ok(())
    }
}
