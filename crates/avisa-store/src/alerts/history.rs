//! A person's past alerts, newest first, for their history screen.

use avisa_core::UnixMillis;
use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError};

impl Store {
    /// The ids of the person's alerts (practice included), newest first.
    pub async fn alert_ids_of(
        &self,
        person_id: Uuid,
        limit: i64,
    ) -> Result<Vec<(Uuid, UnixMillis)>, StoreError> {
        let sql = "SELECT id, created_at FROM alerts WHERE person_id = $1 \
                   ORDER BY created_at DESC, id DESC LIMIT $2";
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(person_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?)
    }
}
