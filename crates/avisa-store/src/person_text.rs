//! Opaque text of a person's that the server writes and reads whole, sealed
//! with the person's key in one column of `people`: the duress view
//! (`decoy_enc`, see `duress.rs`) and the locator details (`locator_enc`,
//! see `locator.rs`). Deleting the person deletes it with their key.

use uuid::Uuid;

use crate::db::db_run;
use crate::{Store, StoreError, aad};

/// Which of the person's sealed texts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PersonText {
    Decoy,
    Locator,
}

impl PersonText {
    fn select(self) -> &'static str {
        match self {
            PersonText::Decoy => "SELECT decoy_enc FROM people WHERE id = $1",
            PersonText::Locator => "SELECT locator_enc FROM people WHERE id = $1",
        }
    }

    fn update(self) -> &'static str {
        match self {
            PersonText::Decoy => "UPDATE people SET decoy_enc = $1 WHERE id = $2",
            PersonText::Locator => "UPDATE people SET locator_enc = $1 WHERE id = $2",
        }
    }

    /// What the sealed value is bound to (with the person's id).
    fn place(self) -> &'static str {
        match self {
            PersonText::Decoy => "people.decoy",
            PersonText::Locator => "people.locator",
        }
    }
}

impl Store {
    /// The text, or None when none was written (NotFound: no such person).
    pub(crate) async fn person_text(
        &self,
        person_id: Uuid,
        what: PersonText,
    ) -> Result<Option<String>, StoreError> {
        let sql = what.select();
        let sealed: Option<Option<Vec<u8>>> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(person_id)
                .fetch_optional(pool)
                .await
        })?;
        let Some(sealed) = sealed.ok_or(StoreError::NotFound)? else {
            return Ok(None);
        };
        let keys = self.load_people([person_id]).await?;
        Ok(Some(keys.open_str(&aad(what.place(), person_id), &sealed)?))
    }

    /// Writes (Some) or forgets (None) the text.
    pub(crate) async fn set_person_text(
        &self,
        person_id: Uuid,
        what: PersonText,
        text: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = self.person_key(person_id).await?;
        let sealed = text
            .map(|v| key.seal(aad(what.place(), person_id).as_bytes(), v.as_bytes()))
            .transpose()?;
        let sql = what.update();
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
