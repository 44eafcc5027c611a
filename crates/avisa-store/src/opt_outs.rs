//! Numbers whose owners told a provider to stop our messages: kept as the
//! keyed blind index only, so the person can be told which contact blocked
//! Avisa. A contact saved again with that number clears it (the person was
//! told, and may have asked them to send START).

use std::collections::HashSet;

use avisa_core::{PhoneNumber, UnixMillis};

use crate::db::db_run;
use crate::{Store, StoreError};

impl Store {
    /// Records that `phone` opted out of our messages.
    pub async fn record_opt_out(
        &self,
        phone: &PhoneNumber,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO opt_outs (phone_index, at) VALUES ($1, $2) \
                   ON CONFLICT (phone_index) DO UPDATE SET at = $2";
        let index = self.phone_index(phone);
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&index)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets an opt-out (the number was saved again as a contact).
    pub async fn clear_opt_out(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        let index = self.phone_index(phone);
        db_run!(self.db.writer(), |pool| {
            sqlx::query("DELETE FROM opt_outs WHERE phone_index = $1")
                .bind(&index)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Which of `phones` opted out (by E.164).
    pub async fn opted_out(&self, phones: &[&PhoneNumber]) -> Result<HashSet<String>, StoreError> {
        if phones.is_empty() {
            return Ok(HashSet::new());
        }
        let indexes: Vec<(Vec<u8>, &PhoneNumber)> =
            phones.iter().map(|p| (self.phone_index(p), *p)).collect();
        let found: Vec<Vec<u8>> = db_run!(self.db.reader(), |pool| {
            let mut b =
                sqlx::QueryBuilder::new("SELECT phone_index FROM opt_outs WHERE phone_index IN (");
            let mut list = b.separated(", ");
            for (index, _) in &indexes {
                list.push_bind(index.clone());
            }
            b.push(")");
            b.build_query_scalar()
                .persistent(false)
                .fetch_all(pool)
                .await?
        });
        Ok(indexes
            .into_iter()
            .filter(|(index, _)| found.contains(index))
            .map(|(_, p)| p.as_str().to_string())
            .collect())
    }
}
