//! A press from any phone: the person's number and PIN, entered on the voice
//! line or sent as "AYUDA <number> <PIN>" from a phone that is not theirs,
//! raise their alert as the button would.
//!
//! The guard, shared by both ways in:
//!
//! - each calling number may try [`Limits::help_attempts_per_caller_per_hour`]
//!   pairs an hour (a facility's phone is shared: the limit only stops one
//!   caller from walking through numbers);
//! - the PIN goes through [`crate::pin::check`], so wrong PINs count towards
//!   the person's one lockout, whatever door they came through;
//! - whatever is wrong — an unknown number, a wrong PIN, a locked PIN — the
//!   answer is the same [`Outcome::Refused`], after the same hashing work,
//!   so neither the words nor the time tell whether a number is registered.
//!
//! The alert is raised quietly (no SMS to the person's own phone: it may be
//! in someone else's hands) with the calling number, which the console
//! shows. The duress PIN raises it the same way and flags it.
//!
//! [`Limits::help_attempts_per_caller_per_hour`]: crate::config::limits::Limits

use avisa_core::{AlertSource, MessageKind, PhoneNumber, now_millis};
use avisa_store::Budget;

use crate::error::ApiResult;
use crate::pin::{self, Entered, PinError};
use crate::state::AppState;
use avisa_engine::alerting::{Raise, RaiseError};

/// What a number-and-PIN attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The alert is raised (or was, by the same call or message before).
    Raised {
        /// Contacts the alert goes to.
        contacts: usize,
        /// The consulate it reached, by name.
        consulate: Option<String>,
    },
    /// The person already has as many alerts active as the limit allows:
    /// the consulate has them.
    AlreadyActive,
    /// The right PIN, but the profile cannot raise an alert yet (no name,
    /// home state or PIN was ever set).
    Incomplete,
    /// Unknown number, wrong PIN or a locked PIN: told apart to nobody.
    Refused,
    /// This caller tried too many pairs this hour.
    CallerLimited,
}

/// Tries `typed` (the person's number as dialled) and `pin` from `caller`.
/// `key` makes the attempt idempotent (a webhook delivered twice raises one
/// alert): the provider's call or message id.
pub async fn attempt(
    state: &AppState,
    caller: &PhoneNumber,
    typed: &str,
    pin: &str,
    source: AlertSource,
    key: String,
) -> ApiResult<Outcome> {
    let store = &state.store;
    let now = now_millis();
    let (hour, _) = avisa_store::window(now, 3_600_000);
    let budget = [Budget::of_number(
        store,
        "help-caller",
        caller,
        i64::from(state.config.limits.help_attempts_per_caller_per_hour),
    )];
    if store.take_budgets(&budget, hour).await?.is_some() {
        metrics::counter!("avisa_help_attempts_total", "outcome" => "caller_limited").increment(1);
        return Ok(Outcome::CallerLimited);
    }
    let mut hashed = false;
    for number in PhoneNumber::candidates(typed) {
        let Some(person) = store.person_by_phone(&number).await? else {
            continue;
        };
        let entered = match pin::check(state, "pin", person.id, pin, None).await {
            Ok((_, entered)) => entered,
            Err(PinError::Locked { .. }) => continue,
            Err(PinError::Wrong { .. } | PinError::Shape(_)) => {
                hashed = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        return raise_for(state, person, entered, caller, source, key).await;
    }
    if !hashed {
        // The same work as a real check: the time tells nothing.
        pin::check_nothing(state, pin).await?;
    }
    metrics::counter!("avisa_help_attempts_total", "outcome" => "refused").increment(1);
    tracing::info!(source = source.as_str(), "help line: no alert raised");
    Ok(Outcome::Refused)
}

async fn raise_for(
    state: &AppState,
    person: avisa_store::Person,
    entered: Entered,
    caller: &PhoneNumber,
    source: AlertSource,
    key: String,
) -> ApiResult<Outcome> {
    let location = state.store.last_location(person.id).await?;
    let raised = state
        .alerting
        .raise(Raise {
            person,
            device_id: None,
            idempotency_key: key,
            source,
            practice: false,
            pressed_at: None,
            location,
            seen: None,
            missed_checkin: None,
            quiet: true,
            // A withheld caller id is counted under one name, never shown.
            caller: Some(caller.clone()).filter(|c| c.as_str().starts_with('+')),
        })
        .await;
    let raised = match raised {
        Ok(r) => r,
        Err(RaiseError::RateLimited { .. }) => return Ok(Outcome::AlreadyActive),
        Err(RaiseError::ProfileIncomplete) => return Ok(Outcome::Incomplete),
        Err(e) => return Err(e.into()),
    };
    state.dispatch_wake.notify_one();
    if entered == Entered::Duress {
        state.store.flag_duress(raised.id, now_millis()).await?;
        tracing::warn!(alert_id = %raised.id, "help line: duress PIN, alert raised and flagged");
        metrics::counter!("avisa_help_duress_total").increment(1);
    }
    metrics::counter!("avisa_help_attempts_total", "outcome" => "raised").increment(1);
    let (contacts, consulate) = match &raised.created {
        Some(alert) => (
            alert
                .messages
                .iter()
                .filter(|m| m.kind == MessageKind::Contact)
                .count(),
            alert
                .consulate_id
                .as_deref()
                .and_then(|c| state.alerting.directory().get(c))
                .map(|o| o.name.clone()),
        ),
        // Raised by this call or message before: read it back.
        None => match state.store.alert(raised.id).await? {
            Some(view) => (
                view.recipients
                    .iter()
                    .filter(|r| r.kind == MessageKind::Contact)
                    .count(),
                view.consulate_id
                    .as_deref()
                    .and_then(|c| state.alerting.directory().get(c))
                    .map(|o| o.name.clone()),
            ),
            None => (0, None),
        },
    };
    Ok(Outcome::Raised {
        contacts,
        consulate,
    })
}
