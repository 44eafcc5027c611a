//! Numbers whose owners told a provider (or the service number) to stop our
//! messages: kept as the keyed blind index and the time only, so the person
//! can be told which contact blocked Avisa and since when. Only the number's
//! own START clears it; a contact saved again with that number does not.

use std::collections::HashMap;

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

    /// Forgets an opt-out (the number sent START).
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

    /// Which of `phones` opted out (by E.164), and when.
    pub async fn opted_out(
        &self,
        phones: &[&PhoneNumber],
    ) -> Result<HashMap<String, UnixMillis>, StoreError> {
        if phones.is_empty() {
            return Ok(HashMap::new());
        }
        let indexes: Vec<(Vec<u8>, &PhoneNumber)> =
            phones.iter().map(|p| (self.phone_index(p), *p)).collect();
        let found: Vec<(Vec<u8>, i64)> = db_run!(self.db.reader(), |pool| {
            let mut b = sqlx::QueryBuilder::new(
                "SELECT phone_index, at FROM opt_outs WHERE phone_index IN (",
            );
            let mut list = b.separated(", ");
            for (index, _) in &indexes {
                list.push_bind(index.clone());
            }
            b.push(")");
            b.build_query_as().persistent(false).fetch_all(pool).await?
        });
        Ok(indexes
            .into_iter()
            .filter_map(|(index, p)| {
                found
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, at)| (p.as_str().to_string(), *at))
            })
            .collect())
    }
}
