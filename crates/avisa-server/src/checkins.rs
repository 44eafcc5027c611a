//! The check-in timers' periodic job: reminders before the deadline, and
//! the alert of every timer whose deadline passed without a check-out.
//!
//! Once, across instances and restarts: a timer's alert is raised with the
//! timer's own idempotency key (`checkin-<id>`), so two instances, or one
//! that died between raising and recording, make one alert; the timer is
//! then marked fired, whoever gets there first. A reminder is taken and
//! marked in one statement.

use avisa_core::localtime::local_clock;
use avisa_core::{AlertSource, Channel, CheckinState, messages, now_millis};
use avisa_store::{Checkin, MessageKind, NewMessage, Purpose};
use uuid::Uuid;

use crate::alerting::{Raise, RaiseError, raise, zone_of};
use crate::pin::Entered;
use crate::pin::PinError;
use crate::state::AppState;

/// Why a check-in could not be acted on; the phone API answers each with
/// its HTTP status (the `From` in `error.rs`), the SMS check-out
/// decides from this what the person is told.
#[derive(Debug, thiserror::Error)]
pub enum CheckinError {
    #[error(transparent)]
    Raise(#[from] RaiseError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Store(#[from] avisa_store::StoreError),
}

/// Timers fired (or reminded) per round at most; the next round, a second
/// later, takes the rest.
const PER_ROUND: i64 = 500;

/// Timers raised at once within a round.
const IN_FLIGHT: usize = 64;

/// Raises a timer's alert as the button would, with the planned place in
/// its messages. `quiet`: no SMS to the person's own phone (a check-out
/// forced with the duress PIN). Returns the alert's id (the same one
/// however often it is called for a timer).
pub async fn raise_for(
    state: &AppState,
    checkin: &Checkin,
    quiet: bool,
) -> Result<Uuid, RaiseError> {
    let person = state
        .store
        .person(checkin.person_id)
        .await?
        .ok_or(RaiseError::NoPerson)?;
    let location = match checkin.location {
        Some(l) => Some(l),
        None => state.store.last_location(person.id).await?,
    };
    let raised = raise(
        state,
        Raise {
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
        },
    )
    .await?;
    state.dispatch_wake.notify_one();
    Ok(raised.id)
}

/// With the duress PIN: the timer's alert, raised now in silence (no SMS
/// to the person's phone) and flagged for the consulate. None with the PIN.
pub(crate) async fn forced(
    state: &AppState,
    checkin: &Checkin,
    entered: Entered,
    now: i64,
) -> Result<Option<Uuid>, CheckinError> {
    if entered != Entered::Duress {
        return Ok(None);
    }
    let alert_id = raise_for(state, checkin, true).await?;
    state.store.flag_duress(alert_id, now).await?;
    tracing::warn!(checkin_id = %checkin.id, %alert_id, "check-in timer used under duress: alert raised");
    metrics::counter!("avisa_checkins_duress_total").increment(1);
    Ok(Some(alert_id))
}

/// "SALI <PIN>" (or "OUT <PIN>") from the person's own phone: checks out
/// the scheduled timer whose deadline comes first, through the PIN guard;
/// the duress PIN checks out the same and raises the alert in silence.
/// Returns the reply for the person's phone.
pub(crate) async fn checkout_by_sms(
    state: &AppState,
    person: &avisa_store::Person,
    pin: &str,
) -> Result<String, CheckinError> {
    use messages::CheckoutReply;
    let lang = person.profile.language;
    let entered = match crate::pin::check(state, "pin", person.id, pin, None).await {
        Ok((_, entered)) => entered,
        Err(PinError::Locked { retry_after_secs }) => {
            let minutes = retry_after_secs.div_ceil(60);
            return Ok(messages::checkout_reply(
                lang,
                CheckoutReply::Locked(minutes),
            ));
        }
        Err(PinError::Wrong { .. } | PinError::Shape(_)) => {
            return Ok(messages::checkout_reply(lang, CheckoutReply::WrongPin));
        }
        Err(e) => return Err(e.into()),
    };
    let now = now_millis();
    let next = state
        .store
        .checkins_of(person.id)
        .await?
        .into_iter()
        .filter(|c| c.state == CheckinState::Scheduled)
        .min_by_key(|c| c.deadline);
    let Some(checkin) = next else {
        return Ok(messages::checkout_reply(lang, CheckoutReply::NoTimer));
    };
    let alert_id = forced(state, &checkin, entered, now).await?;
    if !state
        .store
        .end_checkin(checkin.id, CheckinState::CheckedOut, alert_id, now)
        .await?
    {
        // Fired or ended in the same instant.
        return Ok(messages::checkout_reply(lang, CheckoutReply::NoTimer));
    }
    metrics::counter!("avisa_checkins_checked_out_total", "by" => "sms").increment(1);
    Ok(messages::checkout_reply(
        lang,
        CheckoutReply::Done(checkin.place.as_deref().filter(|p| !p.is_empty())),
    ))
}

/// One round: reminders due, then timers due.
pub async fn run(state: AppState) {
    let now = now_millis();
    remind(&state, now).await;
    let due = match state.store.due_checkins(now, PER_ROUND).await {
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
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    for checkin in due {
        let (state, slots) = (state.clone(), slots.clone());
        raising.spawn(async move {
            let _slot = slots.acquire_owned().await;
            fire(&state, &checkin, now).await;
        });
    }
    while raising.join_next().await.is_some() {}
}

/// Raises one due timer's alert and records it fired.
async fn fire(state: &AppState, checkin: &Checkin, now: i64) {
    match raise_for(state, checkin, false).await {
        Ok(alert_id) => {
            match state
                .store
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

async fn remind(state: &AppState, now: i64) {
    let ahead = crate::config::millis(state.config.alerts.checkin_reminder);
    let taken = match state.store.take_reminders(now, ahead, PER_ROUND).await {
        Ok(taken) => taken,
        Err(e) => {
            tracing::error!(error = %e, "taking check-in reminders failed");
            return;
        }
    };
    let expires_at = now + crate::config::millis(state.config.sms.validity);
    let mut reminders = Vec::with_capacity(taken.len());
    for (_, person_id, deadline) in taken {
        let Ok(Some(person)) = state.store.person(person_id).await else {
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
    match state.store.enqueue(&reminders, now).await {
        Ok(_) => {
            metrics::counter!("avisa_checkin_reminders_total").increment(reminders.len() as u64);
            state.dispatch_wake.notify_one();
        }
        Err(e) => tracing::error!(error = %e, "queueing check-in reminders failed"),
    }
}
