//! What the family needs to find the person in ICE's detainee locator
//! (`people.locator_enc`, issue 34): opaque text the server wrote, sealed
//! with the person's key like every personal field, so a seized database
//! says nothing and deleting the person deletes it with their key.

use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError, aad};

impl Store {
    /// The person's locator details as the server wrote them, or None.
    pub async fn locator(&self, person_id: Uuid) -> Result<Option<String>, StoreError> {
        let sql = "SELECT locator_enc FROM people WHERE id = $1";
        let sealed: Option<Option<Vec<u8>>> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(person_id)
                .fetch_optional(pool)
                .await
        })?;
        let Some(sealed) = sealed.ok_or(StoreError::NotFound)? else {
            return Ok(None);
        };
        self.load_people([person_id]).await?;
        Ok(Some(
            self.open_str(&aad("people.locator", person_id), &sealed)?,
        ))
    }

    /// Writes (Some) or forgets (None) the person's locator details.
    pub async fn set_locator(
        &self,
        person_id: Uuid,
        locator: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = self.person_key(person_id).await?;
        let sealed = locator
            .map(|v| key.seal(aad("people.locator", person_id).as_bytes(), v.as_bytes()))
            .transpose()?;
        let sql = "UPDATE people SET locator_enc = $1 WHERE id = $2";
        let n = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&sealed)
                .bind(person_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }
}
