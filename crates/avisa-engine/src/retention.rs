//! `[retention]`: how long what Avisa holds is kept, and the periodic job
//! that applies it ([`run`]). On by default: a copy of the database taken
//! later holds less, and what is gone cannot be read by anyone. Message
//! texts are wiped once final, a resolved case's trail and then its
//! personal fields, ended check-in timers; what the job removed goes to the
//! log and the metrics as counts, never as data. Unverified devices and old
//! budget windows are the server's purge job's.

use std::time::Duration;

use avisa_core::now_millis;
use avisa_store::{Cutoffs, Store};
use serde::Deserialize;

use crate::config::millis;

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

/// One run of the job, with the store and the settings only.
pub async fn run((store, r): (Store, Retention)) {
    let now = now_millis();
    let cutoffs = Cutoffs {
        bodies: now - millis(r.message_bodies),
        trail: now - millis(r.resolved_trail),
        personal: now - millis(r.resolved_personal),
        checkins: now - millis(r.ended_checkins),
    };
    match store.apply_retention(&cutoffs).await {
        Ok(removed) => {
            for (what, n) in [
                ("message_bodies", removed.message_bodies),
                ("trail_points", removed.trail_points),
                ("personal_fields", removed.personal_fields),
                ("checkins", removed.checkins),
                ("stray_messages", removed.stray_messages),
            ] {
                metrics::counter!("avisa_retention_removed_total", "what" => what).increment(n);
            }
            if removed.any() {
                tracing::info!(
                    message_bodies = removed.message_bodies,
                    trail_points = removed.trail_points,
                    personal_fields = removed.personal_fields,
                    checkins = removed.checkins,
                    stray_messages = removed.stray_messages,
                    "retention: removed what had served"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "retention run failed"),
    }
}
