//! A check-in timer ended by the person, through the PIN guard: the duress
//! PIN ends it as the PIN does and raises its alert in silence. The job
//! that fires missed timers is the engine's (`avisa_engine::checkins`).

use avisa_core::{CheckinState, messages, now_millis};
use avisa_engine::alerting::RaiseError;
use avisa_engine::checkins::raise_for;
use avisa_store::Checkin;
use uuid::Uuid;

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
    let alert_id = raise_for(&state.alerting, checkin, true).await?;
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
