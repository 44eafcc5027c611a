//! `[retention]`: how long what Avisa holds is kept. On by default: a copy
//! of the database taken later holds less, and what is gone cannot be read
//! by anyone. The periodic job that applies it is `crate::retention`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// A message's text (and, for a verification code, the code) is wiped
    /// this long after it reached a final status; the status stays.
    #[serde(with = "humantime_serde")]
    pub message_bodies: Duration,
    /// A resolved case's location trail is deleted this long after the
    /// resolution.
    #[serde(with = "humantime_serde")]
    pub resolved_trail: Duration,
    /// A resolved case's personal fields (who the messages went to, the
    /// calling number, the staff's notes and the outcome's detail, the
    /// check-in plan) are wiped this long after the resolution; what the
    /// statistics count stays.
    #[serde(with = "humantime_serde")]
    pub resolved_personal: Duration,
    /// Check-in timers that ended without an alert (checked out, cancelled)
    /// are deleted this long after their deadline.
    #[serde(with = "humantime_serde")]
    pub ended_checkins: Duration,
    /// How often the job runs.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
}

const DAY: u64 = 24 * 3600;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            message_bodies: Duration::from_secs(DAY),
            resolved_trail: Duration::from_secs(30 * DAY),
            resolved_personal: Duration::from_secs(90 * DAY),
            ended_checkins: Duration::from_secs(30 * DAY),
            every: Duration::from_secs(3600),
        }
    }
}
