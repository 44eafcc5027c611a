//! The server's periodic jobs, under the engine's supervisor
//! ([`avisa_engine::supervisor`]): each is the engine's, given the handles
//! and settings it uses; one entry each in [`jobs`].

use std::time::Duration;

use avisa_engine::supervisor::Supervisor;
use avisa_engine::{checkins, escalation, retention};

use crate::state::AppState;

/// The periodic jobs: one line each.
pub fn jobs(supervisor: &Supervisor, state: &AppState) {
    let escalation = escalation::Escalation {
        alerting: state.alerting.clone(),
        events: state.events.clone(),
        wake: state.dispatch_wake.clone(),
        after: state.config.console.escalate_after,
        again_after: state.config.console.escalate_again_after,
    };
    supervisor.every(
        "escalation",
        escalation.every(),
        escalation,
        escalation::run,
    );
    supervisor.every(
        "purge",
        Duration::from_secs(600),
        retention::Purge {
            store: state.store.clone(),
            unverified_ttl: state.config.limits.unverified_ttl,
            login_forget: state.config.console.login_forget,
        },
        retention::purge,
    );
    // Silence is looked for at a quarter of its timeout (at most every 30 s).
    let every = (state.config.sms.receipt_timeout / 4)
        .clamp(Duration::from_millis(250), Duration::from_secs(30));
    supervisor.every(
        "receipts",
        every,
        avisa_engine::receipts::Silence {
            store: state.store.clone(),
            events: state.events.clone(),
            wake: state.dispatch_wake.clone(),
            timeout: state.config.sms.receipt_timeout,
        },
        avisa_engine::receipts::unconfirmed,
    );
    supervisor.every(
        "retention",
        state.config.retention.every,
        (state.store.clone(), state.config.retention.clone()),
        retention::run,
    );
    // A missed check-in's alert leaves within a second of its deadline.
    supervisor.every(
        "checkins",
        Duration::from_secs(1),
        checkins::Timers {
            alerting: state.alerting.clone(),
            wake: state.dispatch_wake.clone(),
            reminder: state.config.alerts.checkin_reminder,
        },
        checkins::run,
    );
    // A gateway out for an account error is asked whether it works again
    // a few times within its pause.
    let every = (state.config.dispatch.account_pause / 6)
        .clamp(Duration::from_millis(100), Duration::from_secs(10));
    supervisor.every(
        "gateway-probe",
        every,
        state.dispatcher.clone(),
        |dispatcher| async move { dispatcher.probe_paused().await },
    );
    // What an operator's alerting watches: how long the oldest alert SMS
    // has waited for a gateway.
    supervisor.every(
        "queue-age",
        Duration::from_secs(10),
        state.dispatcher.clone(),
        |dispatcher| async move { dispatcher.gauge_waiting().await },
    );
    supervisor.every(
        "metrics-upkeep",
        Duration::from_secs(5),
        state.metrics.clone(),
        |metrics| async move { metrics.run_upkeep() },
    );
}
