//! The `[dispatch]` section of the configuration: how the dispatcher
//! claims, retries and fails over messages.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    pub batch: u32,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// How long a gateway that refused our account or credentials is out
    /// of service before it is tried again; one whose provider can be
    /// asked (Twilio) is asked six times within it, and is back as soon as
    /// our credentials work.
    #[serde(with = "humantime_serde")]
    pub account_pause: Duration,
    /// An instance silent this long is taken for dead: its messages go to
    /// the others (it beats four times as often).
    #[serde(with = "humantime_serde")]
    pub takeover: Duration,
    /// A message left in doubt on a gateway (sent, no answer in time) stays
    /// with that gateway until it has been asked whether it has it, for at
    /// most this long; only then may another gateway send it (a possible
    /// duplicate). Seconds matter more than a second copy: 60 s.
    #[serde(with = "humantime_serde")]
    pub in_doubt_window: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            batch: 512,
            lease: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            account_pause: Duration::from_secs(60),
            takeover: Duration::from_secs(3),
            in_doubt_window: Duration::from_secs(60),
        }
    }
}

impl DispatchConfig {
    /// How long a message being sent stays leased, in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        millis(self.lease)
    }
}

/// A duration in whole milliseconds, as the store counts time.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
