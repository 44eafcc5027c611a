//! The `[dispatch]` section: how the dispatcher claims, retries and fails
//! over messages.

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
