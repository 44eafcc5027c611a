//! Fresh messages from the group commit straight to the dispatcher.
//!
//! Otherwise every committed message is read back by a claim: one more
//! UPDATE of its row on the single writer the presses wait for, and its text
//! decrypted again. When the dispatcher has caught up with the queue (its
//! last claim found less than a round) and a commit's messages fit in the
//! room it gives (two rounds), the writer inserts them already leased
//! ("sending", as a claim leaves them) and, once committed, hands their text
//! over in memory.
//!
//! Nothing is lost this way: the rows are leased like claimed ones, so if
//! the process dies before their outcomes are recorded, the lease runs out
//! and a sweep puts them back in the queue. Fairness holds too: under a
//! capped gateway a round is a few messages, an alert's messages do not fit,
//! and they go through the claim in rank order; a round that takes handed-off
//! messages sorts them with what it claimed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use avisa_core::{UnixMillis, now_millis};
use avisa_store::Claimed;

pub struct Handoff {
    state: Mutex<State>,
    lease_ms: i64,
    /// Group commits so far: a dispatch round compares it with the count
    /// when its messages were claimed (see `Dispatcher::round`).
    commits: AtomicU64,
}

#[derive(Default)]
struct State {
    /// How many messages may wait here (0: none; the dispatcher is behind,
    /// stopping, or not running).
    room: usize,
    /// Messages of commits under way that will be handed over.
    reserved: usize,
    /// Committed, leased until the time beside them, waiting for a round.
    pending: Vec<(UnixMillis, Claimed)>,
}

impl Handoff {
    pub fn new(lease_ms: i64) -> Self {
        Handoff {
            state: Mutex::new(State::default()),
            lease_ms,
            commits: AtomicU64::new(0),
        }
    }

    /// The writer: a group commit is durable (called before its presses are
    /// answered).
    pub fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// How many group commits so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dispatcher says how many messages may wait here for its next
    /// rounds: some once a claim found the queue empty, 0 while it is
    /// behind (the queue's order then decides) or stopping.
    pub fn set_room(&self, room: usize) {
        self.state().room = room;
    }

    /// The dispatcher takes what was handed over, at most `max`, best rank
    /// first (ids are time-ordered: then the oldest). A message with less
    /// than half its lease left is dropped instead: the sweep may already
    /// have put its row back in the queue, and a claim will send it.
    pub fn take(&self, max: usize) -> Vec<Claimed> {
        let mut state = self.state();
        let enough = now_millis() + self.lease_ms / 2;
        let before = state.pending.len();
        state.pending.retain(|(until, _)| *until > enough);
        let dropped = before - state.pending.len();
        if dropped > 0 {
            tracing::warn!(
                count = dropped,
                "handed-over messages waited too long; their leases will bring them back"
            );
        }
        state.pending.sort_by_key(|(_, m)| (m.rank, m.id));
        let n = state.pending.len().min(max);
        state.pending.drain(..n).map(|(_, m)| m).collect()
    }

    /// Whether anything waits to be taken.
    pub fn has_pending(&self) -> bool {
        !self.state().pending.is_empty()
    }

    /// The dispatcher stops: nothing more is handed over, and what waits
    /// comes back (to be released to the queue).
    pub fn close(&self) -> Vec<Claimed> {
        let mut state = self.state();
        state.room = 0;
        state.pending.drain(..).map(|(_, m)| m).collect()
    }

    /// The writer asks, before a commit of `n` messages, whether to write
    /// them leased and hand them over. The answer holds their place until it
    /// is delivered or dropped.
    pub fn reserve(&self, n: usize) -> Option<Reservation<'_>> {
        if n == 0 {
            return None;
        }
        let mut state = self.state();
        if state.pending.len() + state.reserved + n > state.room {
            return None;
        }
        state.reserved += n;
        Some(Reservation {
            handoff: self,
            n,
            lease_until: now_millis() + self.lease_ms,
        })
    }
}

/// A commit's place in the dispatcher's next round.
pub struct Reservation<'a> {
    handoff: &'a Handoff,
    n: usize,
    /// Until when the rows are leased.
    pub lease_until: UnixMillis,
}

impl Reservation<'_> {
    /// Hands over the messages whose rows were committed, leased.
    pub fn deliver(mut self, messages: Vec<Claimed>) {
        metrics::counter!("avisa_outbox_handed_over_total").increment(messages.len() as u64);
        let mut state = self.handoff.state();
        state.reserved -= self.n;
        self.n = 0;
        let until = self.lease_until;
        state
            .pending
            .extend(messages.into_iter().map(|m| (until, m)));
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.handoff.state().reserved -= self.n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avisa_core::PhoneNumber;
    use avisa_store::Purpose;
    use uuid::Uuid;

    fn message(rank: i32) -> Claimed {
        Claimed {
            id: Uuid::now_v7(),
            alert_id: Some(Uuid::now_v7()),
            parent_id: None,
            purpose: Purpose::Alert,
            channel: avisa_core::Channel::Sms,
            to: PhoneNumber::from_e164_unchecked("+15555550100".into()),
            body: "Ayuda".into(),
            attempts: 1,
            gateway_index: 0,
            permanent_failures: 0,
            expires_at: 0,
            rank,
            in_doubt_since: None,
        }
    }

    #[test]
    fn hands_over_only_what_fits_in_its_room() {
        let handoff = Handoff::new(30_000);
        // Not running or behind: nothing is handed over.
        assert!(handoff.reserve(6).is_none());
        handoff.set_room(10);
        let first = handoff.reserve(6).expect("room for 6");
        assert!(first.lease_until > now_millis());
        // 6 reserved: another 6 do not fit, 4 do.
        assert!(handoff.reserve(6).is_none());
        let second = handoff.reserve(4).expect("room for 4");
        // A commit that failed gives its place back.
        drop(second);
        first.deliver((0..6).rev().map(message).collect());
        assert!(handoff.has_pending());
        assert!(handoff.reserve(5).is_none());
        // Best rank first, whatever order they came in.
        let first = handoff.take(4);
        assert_eq!(
            first.iter().map(|m| m.rank).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(handoff.take(512).len(), 2);
        assert!(!handoff.has_pending());
        assert!(handoff.reserve(0).is_none());
        // Stopping: nothing more, and what waited comes back.
        handoff.reserve(3).expect("room").deliver(vec![message(0)]);
        assert_eq!(handoff.close().len(), 1);
        assert!(handoff.reserve(1).is_none());
    }

    #[test]
    fn messages_near_the_end_of_their_lease_are_left_to_the_queue() {
        // A 1 ms lease is more than half gone by the time they are taken:
        // the sweep may have queued their rows again, so memory must not
        // send them too.
        let handoff = Handoff::new(1);
        handoff.set_room(10);
        handoff
            .reserve(2)
            .expect("room")
            .deliver(vec![message(0), message(1)]);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(handoff.take(10).is_empty());
        assert!(!handoff.has_pending());
    }
}
