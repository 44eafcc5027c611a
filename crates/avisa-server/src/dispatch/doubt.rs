//! A message's next try, and a message left in doubt: a send that got no
//! answer in time may have reached the provider, so the same gateway is
//! asked before anything is sent again (`dispatch.in_doubt_window`).

use std::time::Duration;

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
        let taken = self
            .store
            .provider_ids_in_use(&ids)
            .await
            .map_err(|e| format!("could not check the provider's ids: {e}"))?;
        Ok(candidates
            .into_iter()
            .find(|c| !taken.contains(&c.provider_id)))
    }
}
