//! Cancelling an alert ("I'm safe") once its person's PIN was entered: what
//! has not gone is withdrawn and those the alert reached are told; with the
//! duress PIN the same is shown while the alert stands, flagged for the
//! consulate; a practice rehearses it and nothing is sent.

use avisa_core::messages::{self, AlertFacts};
use avisa_core::{AlertState, MessageKind, OutboxStatus, now_millis};
use avisa_store::{AlertView, Person, StoreError};

use super::{Alerting, zone_of};
use crate::config::millis;

/// Why an alert was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// Cancelled before (by its person, or by force: a forced cancel must
    /// look final to whoever holds the phone).
    #[error("this alert is already cancelled")]
    AlreadyCancelled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The PIN the cancel was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledWith {
    Pin,
    /// The duress PIN: the alert stays open.
    Duress,
}

impl Alerting {
    /// Cancels `view`, the alert of `person`, whose PIN (or duress PIN) the
    /// caller checked. Returns how many messages were withdrawn — under
    /// duress, how many a real cancel would have withdrawn, so the count
    /// the phone shows says nothing.
    pub async fn cancel(
        &self,
        view: &AlertView,
        person: &Person,
        with: CancelledWith,
    ) -> Result<u64, CancelError> {
        if view.state != AlertState::Active || view.duress_at.is_some() {
            return Err(CancelError::AlreadyCancelled);
        }
        let store = self.store();
        let now = now_millis();
        let name = person.profile.name.clone().unwrap_or_default();
        let facts = AlertFacts {
            alert_id: view.id,
            person_name: &name,
            person_phone: &person.phone,
            location: view.location,
            at_millis: now,
            sent_millis: None,
            zone: zone_of(view.location.as_ref(), person.profile.home_state.as_deref()),
            consulate: None,
            console_url: format!(
                "{}/console/alerts/{}",
                self.rules().public_url.trim_end_matches('/'),
                view.id
            ),
            missed_checkin: None,
            case_number: view.case_number.as_deref(),
            name_at_end: person.profile.name_at_end,
        };
        let expires_at = now + millis(self.rules().validity);
        // A practice under duress is an ordinary cancel: no one else hears
        // of a practice, and the phone shows the same either way.
        let withdrawn = if with == CancelledWith::Duress && !view.practice {
            // Forced: the phone gets what a cancel gives (and its own SMS is
            // the ordinary one), but nothing is withdrawn, the alert stays
            // open and flagged for the consulate, and the contacts hear it
            // was forced.
            let notice = |kind: MessageKind, lang| match kind {
                MessageKind::Consulate => messages::consulate_duress(&facts),
                MessageKind::SelfPhone => messages::safe(lang, &name),
                _ => messages::duress(lang, &name),
            };
            // What a real cancel would have withdrawn.
            let queued = view
                .recipients
                .iter()
                .filter(|r| r.status == OutboxStatus::Queued)
                .count() as u64;
            if store
                .duress_cancel(view.id, now, expires_at, &notice)
                .await?
                .is_none()
            {
                return Err(CancelError::AlreadyCancelled);
            }
            tracing::warn!(alert_id = %view.id, "alert cancelled under duress; it stays open");
            metrics::counter!("avisa_alerts_duress_total").increment(1);
            queued
        } else {
            let safe_text = |kind: MessageKind, lang| match kind {
                MessageKind::Consulate => messages::consulate_cancelled(&facts),
                _ => messages::safe(lang, &name),
            };
            let withdrawn = store
                .cancel_alert(
                    view.id,
                    now,
                    expires_at,
                    // A practice rehearses "I'm safe": the phone sees what a
                    // real one shows, and nobody, its own phone included,
                    // is sent anything.
                    (!view.practice).then_some(&safe_text as _),
                )
                .await?
                .ok_or(CancelError::AlreadyCancelled)?;
            tracing::info!(alert_id = %view.id, withdrawn, "alert cancelled by its person");
            metrics::counter!("avisa_alerts_cancelled_total").increment(1);
            withdrawn
        };
        self.0.events.publish_scoped(view.id, view.scope());
        self.0.wake.notify_one();
        Ok(withdrawn)
    }
}
