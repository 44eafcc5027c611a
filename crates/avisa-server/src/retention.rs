//! The retention job (`[retention]`): message texts wiped once final, a
//! resolved case's trail and then its personal fields, ended check-in
//! timers. What it removed goes to the log and the metrics as counts, never
//! as data. Unverified devices and old budget windows are the purge job's
//! (`jobs.rs`).

use avisa_core::now_millis;
use avisa_store::Cutoffs;

use crate::config::millis;
use crate::state::AppState;

/// One run.
pub async fn run(state: AppState) {
    let r = &state.config.retention;
    let now = now_millis();
    let cutoffs = Cutoffs {
        bodies: now - millis(r.message_bodies),
        trail: now - millis(r.resolved_trail),
        personal: now - millis(r.resolved_personal),
        checkins: now - millis(r.ended_checkins),
    };
    match state.store.apply_retention(&cutoffs).await {
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
