//! What a session unlocked with the duress PIN changes, kept apart from
//! what alerts use (issue 32). The server decides what such a change means;
//! the store only keeps it: the second duress hash (`people.decoy_hash`),
//! the view that session reads back (`people.decoy_enc`, sealed with the
//! person's key, opaque here), and, on the timeline of each of the person's
//! active alerts, what was attempted.

use avisa_core::{AlertState, CaseEventKind, UnixMillis};
use uuid::Uuid;

use crate::console::cases::{EventRow, insert_event};
use crate::db::db_run;
use crate::person_text::PersonText;
use crate::{Store, StoreError, aad};

impl Store {
    /// The view a duress-unlocked session reads back (opaque text the
    /// server wrote), or None when it has changed nothing yet.
    pub async fn decoy_view(&self, person_id: Uuid) -> Result<Option<String>, StoreError> {
        self.person_text(person_id, PersonText::Decoy).await
    }

    /// Writes (Some) or forgets (None) that view.
    pub async fn set_decoy_view(
        &self,
        person_id: Uuid,
        view: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_person_text(person_id, PersonText::Decoy, view)
            .await
    }

    /// Replaces the duress hash and/or the second one (None keeps each).
    pub async fn set_duress_hashes(
        &self,
        person_id: Uuid,
        duress_hash: Option<String>,
        decoy_hash: Option<String>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE people SET duress_hash = COALESCE($1, duress_hash), \
                   decoy_hash = COALESCE($2, decoy_hash) WHERE id = $3";
        let n = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&duress_hash)
                .bind(&decoy_hash)
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

    /// Puts "changed under duress: `what`" on the timeline of every real
    /// active alert of the person (`what` is a word such as `cancel_pin` or
    /// `contacts`, never a value). Returns how many alerts it reached.
    pub async fn record_duress_change(
        &self,
        person_id: Uuid,
        what: &str,
        now: UnixMillis,
    ) -> Result<usize, StoreError> {
        let key = self.person_key(person_id).await?;
        let sql = "SELECT id FROM alerts WHERE person_id = $1 AND state = $2 AND practice = $3";
        let alerts: Vec<Uuid> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(person_id)
                .bind(AlertState::Active)
                .bind(false)
                .fetch_all(pool)
                .await
        })?;
        if alerts.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        for alert_id in &alerts {
            let id = Uuid::now_v7();
            let detail = key.seal(aad("alert_events.detail", id).as_bytes(), what.as_bytes())?;
            insert_event(
                &mut tx,
                &EventRow {
                    id,
                    alert_id: *alert_id,
                    at: now,
                    staff_id: None,
                    kind: CaseEventKind::DuressChange,
                    detail_enc: Some(detail),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(alerts.len())
    }
}
