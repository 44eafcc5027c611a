//! `[retention]`: how long what Avisa holds is kept, and the periodic job
//! that applies it ([`run`]). On by default: a copy of the database taken
//! later holds less, and what is gone cannot be read by anyone. Message
//! texts are wiped once final, a resolved case's trail and then its
//! personal fields, ended check-in timers; what the job removed goes to the
//! log and the metrics as counts, never as data. A second job, [`purge`],
//! forgets what only guards against abuse once it no longer can: budget
//! windows that ended, devices never verified, old console login failures.

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

/// What the purge job takes: the store, how long an unverified device is
/// kept (`limits.unverified_ttl`) and a console login failure counted
/// (`console.login_forget`).
#[derive(Clone)]
pub struct Purge {
    pub store: Store,
    pub unverified_ttl: Duration,
    pub login_forget: Duration,
}

/// Forgets budget windows that ended (the longest are a day: anything
/// older than [`avisa_store::BUDGET_WINDOWS_KEPT_MS`]), devices never
/// verified within their time, and login failures past counting.
pub async fn purge(p: Purge) {
    let now = now_millis();
    match p
        .store
        .purge_budgets_and_unverified(
            now - avisa_store::BUDGET_WINDOWS_KEPT_MS,
            now - millis(p.unverified_ttl),
        )
        .await
    {
        Ok((windows, devices)) => {
            if devices > 0 {
                tracing::info!(devices, windows, "unverified devices forgotten");
            }
            metrics::counter!("avisa_unverified_devices_purged_total").increment(devices);
        }
        Err(e) => tracing::error!(error = %e, "purge failed"),
    }
    if let Err(e) = p
        .store
        .purge_login_failures(now - millis(p.login_forget))
        .await
    {
        tracing::error!(error = %e, "purge of login failures failed");
    }
}
