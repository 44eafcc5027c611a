//! The dispatcher: from the outbox to the gateways, each message by a
//! gateway of its channel.
//!
//! Each round claims the due messages with the lowest fairness rank (every
//! alert's consulate message and first contact before any alert's later
//! messages), leases them, sends them concurrently through the gateways in
//! their configured order, and records every outcome in one transaction:
//! sent (with the provider's id), retry later with exponential backoff and
//! jitter (on the next gateway: failover), failed for good, or expired past
//! its validity. Nothing is ever deleted. A message whose worker died comes
//! back when its lease runs out, so after a crash every committed message is
//! sent at least once; the gateway gets our message id as its reference, so
//! a duplicate is recognisable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use avisa_core::{Channel, now_millis};
use avisa_store::{Claimed, OutboxUpdate, Purpose, Store, StoreError};

use crate::config::DispatchConfig;
use crate::events::Events;
use crate::handoff::Handoff;
use crate::supervisor::TaskCtx;

mod doubt;
mod instances;
mod send;
mod slot;
use doubt::Lookup;
use slot::round_size;
pub use slot::{GatewayHealth, RateLimiter, Slot};

/// While messages handed over by the writer keep a round busy, how often the
/// queue is still claimed from.
const CLAIM_AT_LEAST_EVERY: Duration = Duration::from_millis(100);
/// The fairness rank from which a message is an alert's third or later (its
/// consulate message and first contact are rank 0; its second contact and
/// the person's own phone rank 1).
const LATER_RANK: i32 = 2;

/// A message whose backoff would pass its deadline gets one last try this
/// long before it (room for the send itself).
const LAST_TRY_MARGIN_MS: i64 = 2_000;

pub struct Dispatcher {
    store: Store,
    slots: Vec<Slot>,
    events: Events,
    /// Notified when new messages are committed.
    pub wake: Arc<Notify>,
    /// Fresh messages the writer committed leased for the next round.
    handoff: Arc<Handoff>,
    config: DispatchConfig,
    /// Since when (Unix ms) this instance's beats have all succeeded; 0
    /// while they fail (see `instances.rs`).
    healthy_since: std::sync::atomic::AtomicI64,
    /// Outcomes of rounds that could not be recorded (the database was
    /// away), recorded before anything else when it returns.
    unrecorded: std::sync::Mutex<Vec<OutboxUpdate>>,
    /// The provider's copies known to be ours until recorded, and the
    /// sends in flight, for messages in doubt (see `doubt.rs`).
    copies: doubt::Copies,
}

fn jitter(ms: u64) -> u64 {
    // Uniform in [ms/2, ms]: spreads retries of a burst apart.
    let half = ms / 2;
    half + getrandom::u64().map(|r| r % (half + 1)).unwrap_or(0)
}

/// The reason a message to a number that opted out is not sent.
pub const OPTED_OUT: &str = "opted_out: the number asked for no more messages (STOP)";

impl Dispatcher {
    pub fn new(
        store: Store,
        slots: Vec<Slot>,
        events: Events,
        wake: Arc<Notify>,
        handoff: Arc<Handoff>,
        config: DispatchConfig,
    ) -> Self {
        for channel in Channel::ALL {
            if slot::carriers(&slots, *channel) == 0 {
                tracing::error!(%channel, "no configured gateway carries this channel: its messages wait until they expire");
            }
        }
        Dispatcher {
            store,
            slots,
            events,
            wake,
            handoff,
            config,
            healthy_since: std::sync::atomic::AtomicI64::new(0),
            unrecorded: Default::default(),
            copies: Default::default(),
        }
    }

    pub fn gateway_names(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.gateway.name().to_string())
            .collect()
    }

    /// Runs until the server stops, beating once per turn (the supervisor
    /// restarts it after a crash; `/readyz` fails while it is silent).
    pub async fn run(self: Arc<Self>, ctx: TaskCtx) {
        let mut shutdown = ctx.stop.clone();
        let mut last_sweep = Instant::now() - Duration::from_secs(60);
        let mut next: Option<Vec<Claimed>> = None;
        let mut last_claim = Instant::now();
        // Group commits counted when the round's messages were chosen.
        let mut epoch = self.handoff.commits();
        loop {
            ctx.beat();
            if *shutdown.borrow() {
                self.record_unrecorded().await;
                // Messages claimed or handed over for a round that will not
                // run go back to the queue now, not after their lease.
                let mut unsent = self.handoff.close();
                unsent.extend(next.take().unwrap_or_default());
                if !unsent.is_empty() {
                    self.release(unsent).await;
                }
                return;
            }
            // What was sent but not recorded first: while the database is
            // away nothing new is claimed.
            if !self.record_unrecorded().await {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                self.sweep().await;
                last_sweep = Instant::now();
            }
            // A round ends by recording its outcomes and (mostly) claiming
            // the next round in the same transaction; a fresh claim starts
            // only when the last round found nothing and nothing was handed
            // over.
            let claimed = match next.take() {
                Some(claimed) => Ok(claimed),
                None if self.handoff.has_pending() => Ok(Vec::new()),
                None => {
                    epoch = self.handoff.commits();
                    let claimed = self.claim().await;
                    last_claim = Instant::now();
                    self.caught_up(claimed.as_ref().ok().map(Vec::len));
                    claimed
                }
            };
            let claimed = claimed.map(|mut claimed| {
                // What was handed over fills the round, best rank first.
                let room = (self.batch_size() as usize).saturating_sub(claimed.len());
                let taken_at = self.handoff.commits();
                let handed = self.handoff.take(room);
                if !handed.is_empty() {
                    epoch = taken_at;
                    // Both in rank order (ids are time-ordered, as the
                    // claim's creation order).
                    claimed.extend(handed);
                    claimed.sort_by_key(|m| (m.rank, m.id));
                }
                claimed
            });
            let claimed = match claimed {
                Ok(claimed) if claimed.is_empty() => 0,
                Ok(claimed) => {
                    let count = claimed.len();
                    // While messages handed over wait, the next round is
                    // theirs, and the queue is claimed from only now and
                    // then (retries come due, codes and follow-ups are
                    // queued by other paths): no round exceeds its size, and
                    // neither side waits more than a round or so.
                    let claim_next =
                        !self.handoff.has_pending() || last_claim.elapsed() >= CLAIM_AT_LEAST_EVERY;
                    if claim_next {
                        last_claim = Instant::now();
                    }
                    match self.round(claimed, claim_next, epoch).await {
                        Ok((more, claimed_at)) => {
                            if claim_next {
                                self.caught_up(Some(more.len()));
                            }
                            next = (!more.is_empty()).then_some(more);
                            epoch = claimed_at;
                        }
                        Err(e) => {
                            self.caught_up(None);
                            tracing::error!(error = %e, "dispatch round failed; retrying");
                        }
                    }
                    count
                }
                Err(e) => {
                    tracing::error!(error = %e, "dispatch claim failed; retrying");
                    0
                }
            };
            if claimed == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// How many messages to claim per round. Under a rate-limited gateway a
    /// claimed message goes when its rate slot comes, and an alert accepted
    /// meanwhile waits behind it: a round holds what the gateway takes in
    /// 10 ms plus one send's usual duration (one message at 100/s on an
    /// instant gateway; ~20 at 100/s on a provider answering in 200 ms), so
    /// the gateway stays busy while a new alert's first message never waits
    /// long behind another alert's later ones.
    fn batch_size(&self) -> i64 {
        round_size(i64::from(self.config.batch), &self.slots)
    }

    /// One round: claim, send, record. Returns the number claimed.
    pub async fn run_batch(self: &Arc<Self>) -> Result<usize, StoreError> {
        let epoch = self.handoff.commits();
        let claimed = self.claim().await?;
        let count = claimed.len();
        if count > 0 {
            self.round(claimed, false, epoch).await?;
        }
        Ok(count)
    }

    async fn release(&self, claimed: Vec<Claimed>) {
        let now = now_millis();
        let updates: Vec<OutboxUpdate> = claimed
            .into_iter()
            .map(|m| OutboxUpdate::Release {
                id: m.id,
                next_attempt_at: now,
                at: now,
            })
            .collect();
        if let Err(e) = self.store.apply(&updates).await {
            tracing::error!(error = %e, "could not release claimed messages; their lease will");
        }
    }

    fn lease_ms(&self) -> i64 {
        self.config.lease_ms()
    }

    async fn claim(&self) -> Result<Vec<Claimed>, StoreError> {
        let started = Instant::now();
        let claimed = self
            .store
            .claim(now_millis(), self.batch_size(), self.lease_ms())
            .await?;
        metrics::histogram!("avisa_dispatch_claim_seconds").record(started.elapsed().as_secs_f64());
        Ok(claimed)
    }

    /// The run loop, after a claim that found `found` (None: it failed):
    /// with the queue empty, the writer may hand over up to two rounds of
    /// fresh messages (one being sent while the next commit lands); while it
    /// is not, they wait their turn in the queue.
    fn caught_up(&self, found: Option<usize>) {
        let limit = self.batch_size() as usize;
        let room = match found {
            Some(found) if found < limit => 2 * limit,
            _ => 0,
        };
        self.handoff.set_room(room);
    }

    /// Sends what was claimed and records the outcomes; with `claim_next`,
    /// claims the next round in the same transaction and returns it, with
    /// the group commits counted before that claim.
    ///
    /// `epoch` is the group commits counted when these messages were
    /// chosen. A later-ranked message (an alert's third or more) waiting for
    /// a capped gateway's rate slot gives way if a commit came since: that
    /// commit's alerts may still wait for their first message, which must go
    /// first. Given way, it goes back to the queue and is claimed again in
    /// rank order.
    async fn round(
        self: &Arc<Self>,
        claimed: Vec<Claimed>,
        claim_next: bool,
        epoch: u64,
    ) -> Result<(Vec<Claimed>, u64), StoreError> {
        let now = now_millis();
        let count = claimed.len();
        // Follow-ups ("I'm safe") go only to those the alert reached.
        let parents: Vec<Uuid> = claimed.iter().filter_map(|c| c.parent_id).collect();
        let parent_status = if parents.is_empty() {
            Vec::new()
        } else {
            self.store.message_statuses(&parents).await?
        };
        // Consent is a property of the number, on every gateway: a number
        // that asked for no more messages (a provider's STOP, or STOP sent
        // to the service number) gets none, whichever gateway is up.
        let phones: Vec<&avisa_core::PhoneNumber> = claimed.iter().map(|c| &c.to).collect();
        let refused = self.store.opted_out(&phones).await?;
        let mut updates = Vec::with_capacity(count);
        let mut sends = tokio::task::JoinSet::new();
        for message in claimed {
            if refused.contains_key(message.to.as_str()) {
                metrics::counter!("avisa_sms_total", "gateway" => "none", "outcome" => "opted_out")
                    .increment(1);
                updates.push(OutboxUpdate::Failed {
                    id: message.id,
                    reason: OPTED_OUT.into(),
                    at: now,
                });
                continue;
            }
            if now >= message.expires_at {
                updates.push(OutboxUpdate::Expired {
                    id: message.id,
                    at: now,
                });
                continue;
            }
            if message.purpose == Purpose::Safe
                && let Some(parent) = message.parent_id
                && parent_status.iter().any(|(id, s)| {
                    *id == parent && matches!(s.as_str(), "failed" | "expired" | "withdrawn")
                })
            {
                updates.push(OutboxUpdate::Withdrawn {
                    id: message.id,
                    reason: "the alert never reached this recipient".into(),
                    at: now,
                });
                continue;
            }
            let me = Arc::clone(self);
            let span = tracing::info_span!("dispatch", message_id = %message.id, alert_id = ?message.alert_id, attempt = message.attempts);
            // The gateway and its rate slot are taken here, in claim (rank)
            // order: tasks spawned together run in no particular order.
            // A message in doubt stays with the gateway that may have it.
            let preferred = message.gateway_index.max(0) as usize % self.slots.len();
            let index = if self.pinned(message.in_doubt_since, now) {
                Some(preferred)
            } else {
                slot::choose(&self.slots, preferred, message.channel)
            };
            let Some(index) = index else {
                updates.push(self.no_carrier(&message, now));
                continue;
            };
            let ready = self.slots[index].limiter.reserve();
            sends.spawn(
                async move { me.send_one(message, index, ready, epoch).await }.instrument(span),
            );
        }
        while let Some(done) = sends.join_next().await {
            match done {
                Ok(update) => updates.push(update),
                Err(e) => {
                    tracing::error!(error = %e, "a send task panicked; its lease will bring the message back")
                }
            }
        }
        let started = Instant::now();
        let claimed_at = self.handoff.commits();
        let recorded = if claim_next {
            self.store
                .apply_then_claim(&updates, now_millis(), self.batch_size(), self.lease_ms())
                .await
        } else {
            self.store.apply(&updates).await.map(|t| (t, Vec::new()))
        };
        let (touched, next) = match recorded {
            Ok(done) => done,
            Err(e) => {
                // Sent is sent: kept, and recorded when the database is
                // back, rather than sent again after the lease.
                self.keep_unrecorded(updates);
                return Err(e);
            }
        };
        metrics::histogram!("avisa_dispatch_record_seconds")
            .record(started.elapsed().as_secs_f64());
        self.events.publish_all(&touched);
        Ok((next, claimed_at))
    }

    /// Runs rounds until nothing is due (tests and tools; no sleeping).
    pub async fn drain(self: &Arc<Self>) -> Result<(), StoreError> {
        while self.run_batch().await? > 0 {}
        Ok(())
    }
}

impl Dispatcher {
    /// How many gateways carry `channel`.
    pub(super) fn carriers(&self, channel: Channel) -> usize {
        slot::carriers(&self.slots, channel)
    }

    /// Failover: the next gateway of `channel` after the one at `index`.
    pub(super) fn next_for(&self, index: usize, channel: Channel) -> usize {
        slot::next_for(&self.slots, index, channel)
    }

    /// A message no configured gateway carries: it waits (a gateway of its
    /// channel may be configured before it expires), said loudly, and
    /// expires unsent at its deadline like any message that cannot go.
    fn no_carrier(&self, m: &Claimed, now: i64) -> OutboxUpdate {
        metrics::counter!("avisa_sms_total", "gateway" => "none", "outcome" => "no_gateway")
            .increment(1);
        tracing::error!(channel = %m.channel, "no configured gateway carries this message's channel; it waits");
        let next_attempt_at = now + self.backoff_ms(m.attempts) as i64;
        if next_attempt_at >= m.expires_at {
            return OutboxUpdate::Expired { id: m.id, at: now };
        }
        OutboxUpdate::Retry {
            id: m.id,
            next_attempt_at,
            gateway_index: m.gateway_index,
            permanent_failures: m.permanent_failures,
            reason: format!("no gateway carries {}", m.channel),
            at: now,
            in_doubt: None,
        }
    }

    fn backoff_ms(&self, attempts: i32) -> u64 {
        let exp = attempts.clamp(1, 30) as u32 - 1;
        let base = self.config.retry_base.as_millis() as u64;
        let max = self.config.retry_max.as_millis() as u64;
        jitter(base.saturating_mul(1u64 << exp.min(20)).min(max))
    }

    /// Asks each gateway out for an account error whether our credentials
    /// work again (a periodic job): one that answers yes is back at once,
    /// instead of after the whole `dispatch.account_pause`.
    pub async fn probe_paused(&self) {
        let mut back = false;
        for (index, slot) in self.slots.iter().enumerate() {
            if !slot.account_paused() {
                continue;
            }
            let name = slot.gateway.name().to_string();
            match slot.gateway.probe().await {
                Some(true) => {
                    slot.succeeded();
                    back = true;
                    // What waits for it is due now, not at the pause's end.
                    if let Err(e) = self.store.due_now_on(index as i32, now_millis()).await {
                        tracing::warn!(error = %e, "messages waiting for the gateway stay scheduled");
                    }
                    metrics::counter!("avisa_gateway_probes_total", "gateway" => name.clone(), "outcome" => "back").increment(1);
                    tracing::info!(gateway = %name, "the gateway accepts our credentials again: back in service");
                }
                Some(false) => {
                    metrics::counter!("avisa_gateway_probes_total", "gateway" => name, "outcome" => "refused").increment(1);
                }
                None => {}
            }
        }
        if back {
            self.wake.notify_one();
        }
    }

    /// Each gateway's health, for the console's status bar.
    pub fn gateway_health(&self) -> Vec<GatewayHealth> {
        self.slots.iter().map(Slot::health).collect()
    }
}
