//! The server's periodic jobs, under the engine's supervisor
//! ([`avisa_engine::supervisor`]): one line each in [`jobs`].

use std::time::Duration;

use avisa_engine::supervisor::Supervisor;

use crate::state::AppState;

/// The periodic jobs: one line each.
pub fn jobs(supervisor: &Supervisor, state: &AppState) {
    let escalate_after = state.config.console.escalate_after;
    // Often enough that an escalation is never late by more than a quarter
    // of the timeout (and at most 15 s).
    let every = (escalate_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
    supervisor.every("escalation", every, state.clone(), escalate);
    supervisor.every("purge", Duration::from_secs(600), state.clone(), purge);
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
        avisa_engine::retention::run,
    );
    // A missed check-in's alert leaves within a second of its deadline.
    supervisor.every(
        "checkins",
        Duration::from_secs(1),
        state.clone(),
        crate::checkins::run,
    );
    // A gateway out for an account error is asked whether it works again
    // a few times within its pause.
    let every = (state.config.dispatch.account_pause / 6)
        .clamp(Duration::from_millis(100), Duration::from_secs(10));
    supervisor.every("gateway-probe", every, state.clone(), |s| async move {
        s.dispatcher.probe_paused().await;
    });
    supervisor.every(
        "metrics-upkeep",
        Duration::from_secs(5),
        state.clone(),
        |s| async move {
            s.metrics.run_upkeep();
        },
    );
}

/// Forgets budget windows that ended (the longest are a day: anything
/// older than two days) and devices never verified within
/// `limits.unverified_ttl`.
async fn purge(state: AppState) {
    let now = avisa_core::now_millis();
    let ttl = crate::config::millis(state.config.limits.unverified_ttl);
    match state
        .store
        .purge_budgets_and_unverified(now - avisa_store::BUDGET_WINDOWS_KEPT_MS, now - ttl)
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
    let forget = crate::config::millis(state.config.console.login_forget);
    if let Err(e) = state.store.purge_login_failures(now - forget).await {
        tracing::error!(error = %e, "purge of login failures failed");
    }
}

/// Escalates alerts nobody acknowledged in time to CIAM, and again at the
/// second threshold: each time an SMS to the consulate's duty phone and
/// CIAM's (`alerts.duty_phones`), written with the escalation itself so it
/// goes once across instances and restarts.
async fn escalate(state: AppState) {
    use avisa_core::messages;
    let console = &state.config.console;
    let now = avisa_core::now_millis();
    let first = now - crate::config::millis(console.escalate_after);
    let second = now - crate::config::millis(console.escalate_again_after);
    let duty = &state.config.alerts.duty_phones;
    let validity = crate::config::millis(state.config.sms.validity);
    let public = state.config.public_url.trim_end_matches('/').to_string();
    let notify = |e: &avisa_store::Escalated| {
        let office = e
            .consulate_id
            .as_deref()
            .and_then(|c| state.directory.get(c));
        let body = messages::escalation_duty(
            e.again,
            e.case_number
                .as_deref()
                .unwrap_or(&e.id.simple().to_string()[..8]),
            office.map(|o| o.name.as_str()),
            &messages::short_name(e.person_name.as_deref().unwrap_or_default()),
            (now - e.created_at) / 60_000,
            &format!("{public}/console/alerts/{}", e.id),
        );
        [e.consulate_id.as_deref(), Some("ciam")]
            .into_iter()
            .flatten()
            .filter_map(|key| {
                duty.get(key)
                    .and_then(|p| avisa_core::PhoneNumber::parse(p).ok())
                    .map(|p| (key, p))
            })
            .map(|(key, to)| {
                avisa_store::NewMessage::new(
                    avisa_core::Channel::Sms,
                    avisa_store::MessageKind::Consulate,
                    // A follow-up, not one of the alert's own messages: the
                    // person's list of recipients does not grow with it.
                    avisa_store::Purpose::Update,
                    to,
                    body.clone(),
                    avisa_core::Language::Es,
                    now + validity,
                )
                .owned_by(e.person_id)
                .named(
                    office
                        .filter(|_| key != "ciam")
                        .map_or("CIAM".into(), |o| o.name.clone()),
                )
                .ranked(0)
            })
            .collect()
    };
    match state.store.escalate_due(first, second, now, notify).await {
        Ok(escalated) => {
            for e in &escalated {
                tracing::warn!(alert_id = %e.id, again = e.again, "alert not acknowledged in time: escalated");
            }
            metrics::counter!("avisa_alerts_escalated_total").increment(escalated.len() as u64);
            let ids: Vec<uuid::Uuid> = escalated.iter().map(|e| e.id).collect();
            if !ids.is_empty() {
                state.dispatch_wake.notify_one();
            }
            state.events.publish_all(&ids);
        }
        Err(e) => tracing::error!(error = %e, "escalation check failed"),
    }
}
