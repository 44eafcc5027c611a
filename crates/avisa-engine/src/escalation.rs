//! Escalation: alerts nobody acknowledged in time go to CIAM, and again at
//! the second threshold (`console.escalate_after`,
//! `console.escalate_again_after`). Each time an SMS to the consulate's
//! duty phone and CIAM's (`alerts.duty_phones`), written with the
//! escalation itself so it goes once across instances and restarts.

use std::sync::Arc;
use std::time::Duration;

use avisa_core::{Channel, Language, PhoneNumber, messages, now_millis};
use avisa_store::{Escalated, MessageKind, NewMessage, Purpose};
use tokio::sync::Notify;

use crate::alerting::Alerting;
use crate::config::millis;
use crate::events::Events;

/// What the job takes.
#[derive(Clone)]
pub struct Escalation {
    /// The store, the directory and the duty phones, validity and console
    /// address of its rules.
    pub alerting: Alerting,
    pub events: Events,
    pub wake: Arc<Notify>,
    pub after: Duration,
    pub again_after: Duration,
}

impl Escalation {
    /// How often the job looks: often enough that an escalation is never
    /// late by more than a quarter of the timeout (and at most 15 s).
    pub fn every(&self) -> Duration {
        (self.after / 4).clamp(Duration::from_millis(200), Duration::from_secs(15))
    }
}

/// One round: every alert due for its first or second escalation.
pub async fn run(job: Escalation) {
    let alerting = &job.alerting;
    let rules = alerting.rules();
    let now = now_millis();
    let first = now - millis(job.after);
    let second = now - millis(job.again_after);
    let validity = millis(rules.validity);
    let public = rules.public_url.trim_end_matches('/').to_string();
    let notify = |e: &Escalated| {
        let office = e
            .consulate_id
            .as_deref()
            .and_then(|c| alerting.directory().get(c));
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
                rules
                    .duty_phones
                    .get(key)
                    .and_then(|p| PhoneNumber::parse(p).ok())
                    .map(|p| (key, p))
            })
            .map(|(key, to)| {
                NewMessage::new(
                    Channel::Sms,
                    MessageKind::Consulate,
                    // A follow-up, not one of the alert's own messages: the
                    // person's list of recipients does not grow with it.
                    Purpose::Update,
                    to,
                    body.clone(),
                    Language::Es,
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
    match alerting
        .store()
        .escalate_due(first, second, now, notify)
        .await
    {
        Ok(escalated) => {
            for e in &escalated {
                tracing::warn!(alert_id = %e.id, again = e.again, "alert not acknowledged in time: escalated");
            }
            metrics::counter!("avisa_alerts_escalated_total").increment(escalated.len() as u64);
            let ids: Vec<uuid::Uuid> = escalated.iter().map(|e| e.id).collect();
            if !ids.is_empty() {
                job.wake.notify_one();
            }
            job.events.publish_all(&ids);
        }
        Err(e) => tracing::error!(error = %e, "escalation check failed"),
    }
}
