//! One configured gateway: its rate limit (sends spaced in the order they
//! were reserved), its health (down after repeated failures, or for as long
//! as it asked), and how long its sends take, which sizes the rounds under a
//! capped gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use avisa_core::Channel;
use avisa_sms::Gateway;

/// Consecutive temporary failures after which a gateway counts as down.
const DOWN_AFTER_FAILURES: u32 = 3;
/// How long a gateway that is down is skipped (unless all are down).
const DOWN_FOR: Duration = Duration::from_secs(30);

/// Spaces sends to one gateway at a fixed rate, in the order slots are
/// reserved.
pub struct RateLimiter {
    per_second: u32,
    /// The instances sharing the rate (this one included).
    shares: AtomicU32,
    next: std::sync::Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        RateLimiter {
            per_second,
            shares: AtomicU32::new(1),
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Splits the rate between `instances` beating on the same database:
    /// each sends at most its share, so together they keep the gateway's
    /// rate.
    pub fn share_with(&self, instances: u32) {
        self.shares.store(instances.max(1), Ordering::Relaxed);
    }

    /// The time between two sends of this instance (None: no limit).
    pub fn interval(&self) -> Option<Duration> {
        (self.per_second > 0).then(|| {
            let shares = self.shares.load(Ordering::Relaxed);
            Duration::from_secs_f64(f64::from(shares) / f64::from(self.per_second))
        })
    }

    /// Takes the next free slot and says when it comes (None: no limit).
    /// Called in the order messages must go: slots are handed out in call
    /// order, whatever order the send tasks later run in.
    pub fn reserve(&self) -> Option<Instant> {
        let interval = self.interval()?;
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (*next).max(Instant::now());
        *next = slot + interval;
        Some(slot)
    }
}

#[derive(Default)]
struct Health {
    consecutive_failures: u32,
    down_until: Option<Instant>,
    /// Out because our account or credentials were refused: a probe may
    /// end it early.
    account: bool,
    /// Why it is out, and since when (Unix ms): for the console's bar.
    problem: Option<(String, i64)>,
}

/// A gateway's health as staff see it.
#[derive(Debug, Clone)]
pub struct GatewayHealth {
    /// `twilio`, `kannel`, `log`.
    pub name: String,
    /// False while it is taken out (repeated failures, or our account).
    pub up: bool,
    /// The last refusal that took it out (no phone numbers: redacted).
    pub problem: Option<String>,
    /// Since when it has had that problem (Unix ms).
    pub since: Option<i64>,
}

/// One configured gateway with its rate limit and health.
pub struct Slot {
    pub gateway: Arc<dyn Gateway>,
    pub(super) limiter: RateLimiter,
    health: std::sync::Mutex<Health>,
    /// How long a send takes, a moving average in microseconds (0: none yet).
    send_micros: std::sync::atomic::AtomicU64,
}

impl Slot {
    pub fn new(gateway: Arc<dyn Gateway>, per_second: u32) -> Self {
        Slot {
            gateway,
            limiter: RateLimiter::new(per_second),
            health: std::sync::Mutex::new(Health::default()),
            send_micros: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(super) fn observe_send(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let old = self.send_micros.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.send_micros.store(new.max(1), Relaxed);
    }

    /// The usual time a send takes (at most a second: a gateway slower
    /// than that is failing, and is taken out by the down-detector).
    pub(super) fn send_time(&self) -> Duration {
        let micros = self.send_micros.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_micros(micros).min(Duration::from_secs(1))
    }

    pub(super) fn is_down(&self) -> bool {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.down_until.is_some_and(|t| t > Instant::now())
    }

    pub(super) fn succeeded(&self) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.consecutive_failures = 0;
        h.down_until = None;
        h.account = false;
        h.problem = None;
    }

    /// Out for an account error and still within its pause.
    pub(super) fn account_paused(&self) -> bool {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.account && h.down_until.is_some_and(|t| t > Instant::now())
    }

    pub(super) fn failed(&self, retry_after: Option<Duration>, reason: &str) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.consecutive_failures += 1;
        let now = Instant::now();
        if let Some(wait) = retry_after {
            h.down_until = Some(now + wait);
        } else if h.consecutive_failures >= DOWN_AFTER_FAILURES {
            h.down_until = Some(now + DOWN_FOR);
            if h.problem.is_none() {
                h.problem = Some((reason.to_string(), avisa_core::now_millis()));
            }
        }
    }

    /// Our account or credentials refused: out for `pause`
    /// (`dispatch.account_pause`; such a fault needs a person).
    pub(super) fn account_failed(&self, reason: &str, pause: Duration) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.consecutive_failures += 1;
        h.down_until = Some(Instant::now() + pause);
        h.account = true;
        let since = h
            .problem
            .as_ref()
            .map_or_else(avisa_core::now_millis, |p| p.1);
        h.problem = Some((reason.to_string(), since));
    }

    pub fn health(&self) -> GatewayHealth {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        GatewayHealth {
            name: self.gateway.name().to_string(),
            up: h.down_until.is_none_or(|t| t <= Instant::now()),
            problem: h.problem.as_ref().map(|p| p.0.clone()),
            since: h.problem.as_ref().map(|p| p.1),
        }
    }
}

/// Whether the gateway at `index` carries `channel`.
fn carries(slots: &[Slot], index: usize, channel: Channel) -> bool {
    slots[index].gateway.channels().contains(&channel)
}

/// How many gateways carry `channel` (a message fails for good once each of
/// them refused it).
pub(super) fn carriers(slots: &[Slot], channel: Channel) -> usize {
    (0..slots.len())
        .filter(|i| carries(slots, *i, channel))
        .count()
}

/// The gateway for a message of `channel` that prefers the one at
/// `preferred`: from it on in the configured order, the first of the
/// channel that is up, else the first of the channel (the message waits its
/// backoff there); None when no gateway carries the channel.
pub(super) fn choose(slots: &[Slot], preferred: usize, channel: Channel) -> Option<usize> {
    let n = slots.len();
    let mut of_channel = (0..n)
        .map(|k| (preferred + k) % n)
        .filter(|i| carries(slots, *i, channel))
        .peekable();
    let first = *of_channel.peek()?;
    Some(of_channel.find(|i| !slots[*i].is_down()).unwrap_or(first))
}

/// Failover: the gateway after the one at `index` (wrapping) that carries
/// `channel`; the same one when it is the channel's only gateway.
pub(super) fn next_for(slots: &[Slot], index: usize, channel: Channel) -> usize {
    let n = slots.len();
    (1..=n)
        .map(|k| (index + k) % n)
        .find(|i| carries(slots, *i, channel))
        .unwrap_or(index)
}

/// See [`Dispatcher::batch_size`].
pub(super) fn round_size(configured: i64, slots: &[Slot]) -> i64 {
    let slowest = slots
        .iter()
        .filter_map(|s| s.limiter.interval().map(|i| (i, s)))
        .max_by_key(|(interval, _)| *interval);
    match slowest {
        Some((interval, slot)) => {
            let window = 0.01 + slot.send_time().as_secs_f64();
            let per_window = (window / interval.as_secs_f64()).ceil() as i64;
            configured.min(per_window.max(1))
        }
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(per_second: u32) -> Slot {
        // Never sent through: the file is opened only by a send.
        let gateway = avisa_sms::LogGateway::new(std::env::temp_dir().join("unused.jsonl"), false);
        Slot::new(Arc::new(gateway), per_second)
    }

    #[test]
    fn rounds_follow_the_capped_gateways_rate_and_send_time() {
        // No cap: the configured size.
        assert_eq!(round_size(512, &[slot(0)]), 512);
        // 100/s on an instant gateway: 10 ms of capacity, one message.
        let capped = slot(100);
        assert_eq!(round_size(512, std::slice::from_ref(&capped)), 1);
        // The same cap on a provider answering in 200 ms: enough in flight
        // to keep it at its rate.
        for _ in 0..50 {
            capped.observe_send(Duration::from_millis(200));
        }
        assert_eq!(round_size(512, std::slice::from_ref(&capped)), 21);
        // A provider that hangs counts as at most a second.
        let hanging = slot(100);
        hanging.observe_send(Duration::from_secs(30));
        assert_eq!(round_size(512, &[hanging]), 101);
        // The slowest cap decides; the configured size is the most.
        assert_eq!(round_size(512, &[slot(0), slot(1_000), slot(100)]), 1);
        assert_eq!(round_size(8, &[slot(100_000)]), 8);
    }

    #[test]
    fn rate_slots_go_in_reservation_order() {
        let limiter = RateLimiter::new(100);
        let slots: Vec<Instant> = (0..5).filter_map(|_| limiter.reserve()).collect();
        assert_eq!(slots.len(), 5);
        // Each slot at least one interval after the one reserved before it
        // (more only if the machine paused this test for longer).
        for pair in slots.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(10));
        }
        assert_eq!(RateLimiter::new(0).reserve(), None);
    }

    /// A gateway that carries what it is told to, and sends nothing.
    struct Carrying(&'static [Channel]);

    #[async_trait::async_trait]
    impl Gateway for Carrying {
        fn name(&self) -> &str {
            "carrying"
        }
        fn channels(&self) -> &'static [Channel] {
            self.0
        }
        async fn send(
            &self,
            _sms: &avisa_sms::OutgoingSms,
        ) -> Result<avisa_sms::Accepted, avisa_sms::GatewayError> {
            unreachable!("routing only")
        }
    }

    fn carrying(channels: &'static [Channel]) -> Slot {
        Slot::new(Arc::new(Carrying(channels)), 0)
    }

    #[test]
    fn a_message_goes_and_fails_over_only_by_gateways_of_its_channel() {
        const SMS: &[Channel] = &[Channel::Sms];
        // A gateway of another channel (none carries SMS here) sits first
        // and between the two SMS gateways.
        let slots = [carrying(&[]), carrying(SMS), carrying(&[]), carrying(SMS)];
        assert_eq!(carriers(&slots, Channel::Sms), 2);
        // The first SMS gateway from the one preferred on.
        assert_eq!(choose(&slots, 0, Channel::Sms), Some(1));
        assert_eq!(choose(&slots, 2, Channel::Sms), Some(3));
        // Failover skips the other channel's gateway, and wraps.
        assert_eq!(next_for(&slots, 1, Channel::Sms), 3);
        assert_eq!(next_for(&slots, 3, Channel::Sms), 1);
        // The first SMS gateway down: the second, even when preferred.
        slots[1].failed(Some(Duration::from_secs(60)), "down");
        assert_eq!(choose(&slots, 0, Channel::Sms), Some(3));
        assert_eq!(choose(&slots, 1, Channel::Sms), Some(3));
        // Both down: the preferred one (the message waits its backoff).
        slots[3].failed(Some(Duration::from_secs(60)), "down");
        assert_eq!(choose(&slots, 1, Channel::Sms), Some(1));
        // The channel's only gateway fails over to itself.
        let one = [carrying(&[]), carrying(SMS)];
        assert_eq!(next_for(&one, 1, Channel::Sms), 1);
        // No gateway of the channel: nowhere to send.
        let none = [carrying(&[]), carrying(&[])];
        assert_eq!(choose(&none, 0, Channel::Sms), None);
        assert_eq!(carriers(&none, Channel::Sms), 0);
    }
}
