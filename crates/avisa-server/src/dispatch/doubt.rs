//! A message's next try, and a message left in doubt: a send that got no
//! answer in time may have reached the provider, so the same gateway is
//! asked before anything is sent again (`dispatch.in_doubt_window`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use avisa_sms::{Accepted, OutgoingSms};
use avisa_store::{Claimed, OutboxUpdate};

use super::{Dispatcher, LAST_TRY_MARGIN_MS, Slot, jitter};

impl Dispatcher {
    /// The next try of a message the gateway at `index` did not take for a
    /// passing reason or its own fault: at once by a gateway that is up,
    /// else after the backoff (at least `retry_after`), and one last try
    /// before the deadline rather than none.
    pub(super) fn retry_later(
        &self,
        m: &Claimed,
        index: usize,
        retry_after: Option<Duration>,
        reason: String,
        now: i64,
        in_doubt: Option<i64>,
    ) -> OutboxUpdate {
        let n = self.slots.len();
        // In doubt, the same gateway is tried again (and asked first), even
        // while it is down: another would send a second copy of what the
        // first may have. Only past the window may another send it.
        let since = m.in_doubt_since.or(in_doubt);
        let next = if self.pinned(since, now) {
            index
        } else {
            (index + 1) % n
        };
        let fresh_gateway = (next != index || in_doubt.is_some()) && !self.slots[next].is_down();
        let delay = if fresh_gateway {
            jitter(self.config.retry_base.as_millis() as u64)
        } else {
            let wait = retry_after.map(|d| d.as_millis() as u64).unwrap_or(0);
            self.backoff_ms(m.attempts).max(wait)
        };
        let mut next_attempt_at = now + delay as i64;
        let last_chance = m.expires_at - LAST_TRY_MARGIN_MS;
        if next_attempt_at >= m.expires_at && last_chance > now {
            next_attempt_at = last_chance;
        }
        if next_attempt_at >= m.expires_at {
            OutboxUpdate::Expired { id: m.id, at: now }
        } else {
            OutboxUpdate::Retry {
                id: m.id,
                next_attempt_at,
                gateway_index: next as i32,
                permanent_failures: m.permanent_failures,
                reason,
                at: now,
                in_doubt,
            }
        }
    }

    /// Whether a message in doubt since `since` must stay with the gateway
    /// that may have it (see `dispatch.in_doubt_window`).
    pub(super) fn pinned(&self, since: Option<i64>, now: i64) -> bool {
        since.is_some_and(|s| now < s + crate::config::millis(self.config.in_doubt_window))
    }

    /// The provider's copy of a message whose send was left in doubt: a
    /// candidate it lists that is not already another message of ours;
    /// None when it has none. Err when it could not be asked: the message
    /// is then not sent, but asked again (a failed look-up is no "no").
    pub(super) async fn find_in_doubt(
        &self,
        slot: &Slot,
        sms: &OutgoingSms,
        since: i64,
    ) -> Result<Option<Accepted>, String> {
        let candidates = slot
            .gateway
            .find(sms, since)
            .await
            .map_err(|e| format!("could not ask the gateway about a message in doubt: {e}"))?;
        let ids: Vec<String> = candidates.iter().map(|c| c.provider_id.clone()).collect();
        let recorded = self
            .store
            .provider_ids_in_use(&ids)
            .await
            .map_err(|e| format!("could not check the provider's ids: {e}"))?;
        Ok(self.found_copies.take(candidates, &recorded))
    }
}

/// How long a copy found stays taken in memory: far longer than a round
/// takes to record it.
const FOUND_KEPT: Duration = Duration::from_secs(600);

/// The provider's copies that messages in doubt of this process were found
/// to be, not yet recorded. Two messages with the same text to the same
/// number, both in doubt (a person pressing twice, a crash with both in
/// flight), list the same copies: without this both could take the one
/// copy the provider has, and the other message, never sent, would count
/// as sent.
#[derive(Default)]
pub(super) struct FoundCopies {
    taken: std::sync::Mutex<HashMap<String, Instant>>,
}

impl FoundCopies {
    /// The first candidate neither recorded for another message nor taken
    /// here, now taken; None when every one is (the message is then sent).
    pub(super) fn take(
        &self,
        candidates: Vec<Accepted>,
        recorded: &HashSet<String>,
    ) -> Option<Accepted> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.retain(|_, at| at.elapsed() < FOUND_KEPT);
        let copy = candidates
            .into_iter()
            .find(|c| !recorded.contains(&c.provider_id) && !taken.contains_key(&c.provider_id))?;
        taken.insert(copy.provider_id.clone(), Instant::now());
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copies(ids: &[&str]) -> Vec<Accepted> {
        ids.iter()
            .map(|id| Accepted {
                provider_id: (*id).to_string(),
            })
            .collect()
    }

    /// Two messages in doubt with the same text to the same number, the
    /// provider holding one copy: one of them is that copy, the other is
    /// sent (the crash test lost one this way under load).
    #[test]
    fn one_copy_is_one_message() {
        let found = FoundCopies::default();
        let none = HashSet::new();
        let first = found.take(copies(&["SM1"]), &none);
        assert_eq!(first.map(|c| c.provider_id).as_deref(), Some("SM1"));
        assert!(found.take(copies(&["SM1"]), &none).is_none());
        // Two copies, two messages; a copy recorded for another is skipped.
        let found = FoundCopies::default();
        let recorded: HashSet<String> = ["SM1".to_string()].into();
        let one = found.take(copies(&["SM1", "SM2", "SM3"]), &recorded);
        let two = found.take(copies(&["SM1", "SM2", "SM3"]), &recorded);
        assert_eq!(one.map(|c| c.provider_id).as_deref(), Some("SM2"));
        assert_eq!(two.map(|c| c.provider_id).as_deref(), Some("SM3"));
    }
}
