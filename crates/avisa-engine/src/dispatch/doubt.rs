//! A message's next try, and a message left in doubt: a send that got no
//! answer in time may have reached the provider, so the same gateway is
//! asked before anything is sent again (`dispatch.in_doubt_window`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
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
        // In doubt, the same gateway is tried again (and asked first), even
        // while it is down: another would send a second copy of what the
        // first may have. Only past the window may another send it.
        let since = m.in_doubt_since.or(in_doubt);
        let next = if self.pinned(since, now) {
            index
        } else {
            self.next_for(index, m.channel)
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
    /// candidate it lists that is not already another message of ours.
    /// Err when it could not be asked: the message is then not sent, but
    /// asked again (a failed look-up is no "no").
    pub(super) async fn find_in_doubt(
        &self,
        slot: &Slot,
        sms: &OutgoingSms,
        since: i64,
    ) -> Result<Lookup, String> {
        let candidates = slot
            .gateway
            .find(sms, since)
            .await
            .map_err(|e| format!("could not ask the gateway about a message in doubt: {e}"))?;
        if candidates.is_empty() {
            return Ok(Lookup::Absent);
        }
        let ids: Vec<String> = candidates.iter().map(|c| c.provider_id.clone()).collect();
        let recorded = self
            .store
            .provider_ids_in_use(&ids)
            .await
            .map_err(|e| format!("could not check the provider's ids: {e}"))?;
        Ok(self.copies.take(sms, candidates, &recorded))
    }
}

/// What the provider's list says of a message in doubt.
#[derive(Debug)]
pub(super) enum Lookup {
    /// This copy is the message: recorded as sent, not sent again.
    Found(Accepted),
    /// No copy that is not another message's: the message is sent.
    Absent,
    /// A message with the same text to the same number is being sent by
    /// this process: a copy listed may be that one's, so the message is
    /// asked about again once it is recorded.
    Busy,
}

/// How long a copy known to be one of ours stays known in memory: far
/// longer than a round takes to record it (after that the database says).
const COPY_KEPT: Duration = Duration::from_secs(300);

/// The provider's copies this process knows to be its messages but may not
/// have recorded yet, and the sends in flight. Messages with the same text
/// to the same number (a person pressing twice, twenty presses of a burst)
/// look alike at the provider: a message in doubt must never take the copy
/// of another that is being sent, or was sent and awaits the end of its
/// round to be recorded; the message in doubt, never sent, would count as
/// sent and its contact would get one SMS fewer. The CI crash test lost
/// accepted messages this way: a round held a message in doubt and a fresh
/// one with the same text, and the look-up listed the fresh one's copy.
#[derive(Default)]
pub(super) struct Copies {
    inner: std::sync::Mutex<CopiesInner>,
}

#[derive(Default)]
struct CopiesInner {
    /// Hashes of provider ids known to be ours, and when they became so.
    known: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
    /// Sends in flight, by the hash of their number and text.
    sending: HashMap<u64, usize>,
}

fn hash_of(value: impl Hash) -> u64 {
    // A fixed hasher: the hashes only ever meet each other in this process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn key_of(sms: &OutgoingSms) -> u64 {
    hash_of((sms.to.as_str(), sms.body.as_str()))
}

impl CopiesInner {
    fn know(&mut self, provider_id: &str) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.order.front() {
            if now.duration_since(at) < COPY_KEPT {
                break;
            }
            self.order.pop_front();
            self.known.remove(&id);
        }
        let id = hash_of(provider_id);
        if self.known.insert(id) {
            self.order.push_back((now, id));
        }
    }
}

impl Copies {
    fn lock(&self) -> std::sync::MutexGuard<'_, CopiesInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A send of `sms` begins; the guard says how it ended.
    pub(super) fn sending(&self, sms: &OutgoingSms) -> Sending<'_> {
        let key = key_of(sms);
        *self.lock().sending.entry(key).or_default() += 1;
        Sending { copies: self, key }
    }

    /// The first candidate that is neither recorded for another message
    /// nor known here, now known; Busy while a message alike is in flight.
    pub(super) fn take(
        &self,
        sms: &OutgoingSms,
        candidates: Vec<Accepted>,
        recorded: &HashSet<String>,
    ) -> Lookup {
        let mut inner = self.lock();
        let Some(copy) = candidates.into_iter().find(|c| {
            !recorded.contains(&c.provider_id) && !inner.known.contains(&hash_of(&c.provider_id))
        }) else {
            return Lookup::Absent;
        };
        if inner.sending.get(&key_of(sms)).is_some_and(|n| *n > 0) {
            return Lookup::Busy;
        }
        inner.know(&copy.provider_id);
        Lookup::Found(copy)
    }
}

/// A send in flight (see [`Copies::sending`]).
pub(super) struct Sending<'a> {
    copies: &'a Copies,
    key: u64,
}

impl Sending<'_> {
    /// The provider took it: its copy is ours from this moment on, before
    /// the send stops counting as in flight.
    pub(super) fn accepted(self, provider_id: &str) {
        self.copies.lock().know(provider_id);
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        let mut inner = self.copies.lock();
        if let Some(n) = inner.sending.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                inner.sending.remove(&self.key);
            }
        }
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

    fn sms(body: &str) -> OutgoingSms {
        OutgoingSms {
            id: uuid::Uuid::new_v4(),
            channel: avisa_core::Channel::Sms,
            to: avisa_core::PhoneNumber::parse("+17135550100").expect("number"),
            body: body.into(),
            valid_for: None,
        }
    }

    fn found(l: Lookup) -> Option<String> {
        match l {
            Lookup::Found(c) => Some(c.provider_id),
            _ => None,
        }
    }

    /// Two messages in doubt with the same text to the same number, the
    /// provider holding one copy: one of them is that copy, the other is
    /// sent (the crash test lost one this way under load).
    #[test]
    fn one_copy_is_one_message() {
        let c = Copies::default();
        let none = HashSet::new();
        let m = sms("ayuda");
        assert_eq!(
            found(c.take(&m, copies(&["SM1"]), &none)).as_deref(),
            Some("SM1")
        );
        assert!(matches!(
            c.take(&m, copies(&["SM1"]), &none),
            Lookup::Absent
        ));
        // Two copies, two messages; a copy recorded for another is skipped.
        let c = Copies::default();
        let recorded: HashSet<String> = ["SM1".to_string()].into();
        let one = c.take(&m, copies(&["SM1", "SM2", "SM3"]), &recorded);
        let two = c.take(&m, copies(&["SM1", "SM2", "SM3"]), &recorded);
        assert_eq!(found(one).as_deref(), Some("SM2"));
        assert_eq!(found(two).as_deref(), Some("SM3"));
    }

    /// A message in doubt never takes the copy of one alike that is being
    /// sent, or was sent and is not recorded yet (the crash test lost three
    /// messages in CI this way: the look-up listed a fresh message's copy).
    #[test]
    fn a_copy_sent_in_the_same_round_is_not_the_one_in_doubt() {
        let c = Copies::default();
        let none = HashSet::new();
        let doubtful = sms("ayuda");
        let fresh = sms("ayuda");
        let other = sms("otra cosa");
        // While the fresh one is in flight, its copy may be on the list.
        let sending = c.sending(&fresh);
        assert!(matches!(
            c.take(&doubtful, copies(&["SM9"]), &none),
            Lookup::Busy
        ));
        // Another text in flight is no reason to wait.
        let elsewhere = c.sending(&other);
        drop(sending);
        assert_eq!(
            found(c.take(&doubtful, copies(&["SM8"]), &none)).as_deref(),
            Some("SM8")
        );
        drop(elsewhere);
        // Accepted, not yet recorded: its copy is never the one in doubt.
        c.sending(&fresh).accepted("SM9");
        assert!(matches!(
            c.take(&doubtful, copies(&["SM9"]), &none),
            Lookup::Absent
        ));
        // A send that failed leaves nothing in flight.
        drop(c.sending(&fresh));
        assert_eq!(
            found(c.take(&doubtful, copies(&["SM7", "SM9"]), &none)).as_deref(),
            Some("SM7")
        );
    }
}
