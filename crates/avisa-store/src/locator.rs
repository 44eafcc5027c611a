//! What the family needs to find the person in ICE's detainee locator
//! (`people.locator_enc`, issue 34): opaque text the server wrote, sealed
//! with the person's key like every personal field (`person_text.rs`), so a
//! seized database says nothing and deleting the person deletes it with
//! their key.

use uuid::Uuid;

use crate::person_text::PersonText;
use crate::{Store, StoreError};

impl Store {
    /// The person's locator details as the server wrote them, or None.
    pub async fn locator(&self, person_id: Uuid) -> Result<Option<String>, StoreError> {
        self.person_text(person_id, PersonText::Locator).await
    }

    /// Writes (Some) or forgets (None) the person's locator details.
    pub async fn set_locator(
        &self,
        person_id: Uuid,
        locator: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_person_text(person_id, PersonText::Locator, locator)
            .await
    }
}
