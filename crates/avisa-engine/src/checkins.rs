//! The check-in timers' periodic job: reminders before the deadline, and
//! the alert of every timer whose deadline passed without a check-out.
//!
//! Once, across instances and restarts: a timer's alert is raised with the
//! timer's own idempotency key (`checkin-<id>`), so two instances, or one
//! that died between raising and recording, make one alert; the timer is
//! then marked fired, whoever gets there first. A reminder is taken and
//! marked in one statement.

use std::sync::Arc;
use std::time::Duration;

use avisa_core::localtime::local_clock;
use avisa_core::{AlertSource, Channel, CheckinState, messages, now_millis};
use avisa_store::{Checkin, MessageKind, NewMessage, Purpose};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::alerting::{Alerting, Raise, RaiseError, zone_of};
use crate::config::millis;

/// Timers fired (or reminded) per round at most; the next round, a second
/// later, takes the rest.
const PER_ROUND: i64 = 500;

/// Timers raised at once within a round.
const IN_FLIGHT: usize = 64;

/// What the job takes: the alerting (and its store), the dispatcher's wake
/// for the reminders, and how long before a deadline the reminder goes
/// (`alerts.checkin_reminder`).
#[derive(Clone)]
pub struct Timers {
    pub alerting: Alerting,
    pub wake: Arc<Notify>,
    pub reminder: Duration,
}

/// Raises a timer's alert as the button would, with the planned place in
/// its messages. `quiet`: no SMS to the person's own phone (a check-out
/// forced with the duress PIN). Returns the alert's id (the same one
/// however often it is called for a timer).
pub async fn raise_for(
    alerting: &Alerting,
    checkin: &Checkin,
    quiet: bool,
) -> Result<Uuid, RaiseError> {
    let store = alerting.store();
    let person = store
        .person(checkin.person_id)
        .await?
        .ok_or(RaiseError::NoPerson)?;
    let location = match checkin.location {
        Some(l) => Some(l),
        None => store.last_location(person.id).await?,
    };
    // The writer wakes the dispatcher once the alert is committed.
    let raised = alerting
        .raise(Raise {
            person,
            device_id: None,
            idempotency_key: format!("checkin-{}", checkin.id),
            source: AlertSource::Checkin,
            practice: false,
            pressed_at: None,
            location,
            seen: None,
            missed_checkin: Some(checkin.place.clone().unwrap_or_default()),
            quiet,
            caller: None,
        })
        .await?;
    Ok(raised.id)
}

/// One round: reminders due, then timers due.
pub async fn run(timers: Timers) {
    let now = now_millis();
    remind(&timers, now).await;
    let due = match timers.alerting.store().due_checkins(now, PER_ROUND).await {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(error = %e, "reading the check-in timers due failed");
            return;
        }
    };
    // Many timers fall due together (appointments at 9:00 at one office):
    // raised side by side, they share group commits instead of waiting for
    // one each.
    let mut raising = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    for checkin in due {
        let (alerting, slots) = (timers.alerting.clone(), slots.clone());
        raising.spawn(async move {
            let _slot = slots.acquire_owned().await;
            fire(&alerting, &checkin, now).await;
        });
    }
    while raising.join_next().await.is_some() {}
}

/// Raises one due timer's alert and records it fired.
async fn fire(alerting: &Alerting, checkin: &Checkin, now: i64) {
    match raise_for(alerting, checkin, false).await {
        Ok(alert_id) => {
            match alerting
                .store()
                .end_checkin(checkin.id, CheckinState::Fired, Some(alert_id), now)
                .await
            {
                Ok(true) => {
                    metrics::counter!("avisa_checkins_fired_total").increment(1);
                    tracing::warn!(checkin_id = %checkin.id, %alert_id, "check-in missed: alert raised");
                }
                // Another instance recorded it, or the person checked out in
                // the same instant: the alert stands either way.
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "recording a fired check-in failed"),
            }
        }
        // Left scheduled: the next round tries again.
        Err(e) => {
            tracing::error!(checkin_id = %checkin.id, error = %e, "a missed check-in's alert was not raised")
        }
    }
}

async fn remind(timers: &Timers, now: i64) {
    let store = timers.alerting.store();
    let ahead = millis(timers.reminder);
    let taken = match store.take_reminders(now, ahead, PER_ROUND).await {
        Ok(taken) => taken,
        Err(e) => {
            tracing::error!(error = %e, "taking check-in reminders failed");
            return;
        }
    };
    let expires_at = now + millis(timers.alerting.rules().validity);
    let mut reminders = Vec::with_capacity(taken.len());
    for (_, person_id, deadline) in taken {
        let Ok(Some(person)) = store.person(person_id).await else {
            continue;
        };
        let zone = zone_of(None, person.profile.home_state.as_deref());
        let lang = person.profile.language;
        reminders.push(
            NewMessage::new(
                Channel::Sms,
                MessageKind::Reply,
                Purpose::Reply,
                person.phone.clone(),
                messages::checkin_reminder(lang, &local_clock(deadline, zone, lang)),
                lang,
                expires_at,
            )
            .owned_by(person_id),
        );
    }
    if reminders.is_empty() {
        return;
    }
    match store.enqueue(&reminders, now).await {
        Ok(_) => {
            metrics::counter!("avisa_checkin_reminders_total").increment(reminders.len() as u64);
            timers.wake.notify_one();
        }
        Err(e) => tracing::error!(error = %e, "queueing check-in reminders failed"),
    }
}
