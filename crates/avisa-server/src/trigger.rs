//! The SMS trigger: a plain SMS with the person's keyword, from their
//! verified phone, raises the same alert as the button (with the last known
//! location, or routed by home state). Anything else raises nothing, and the
//! reply is the same for every sender, so it says nothing about whether a
//! number is registered.
//!
//! Replies cost money and anyone can ask for one, so they are bounded: at
//! most one a day per sender, none to a country codes do not go to or to a
//! premium-rate, toll-free or satellite number, none twice for one provider
//! message id, and none for the hour to a number that sent five texts that
//! raised nothing. The right keyword from the person's phone always raises
//! the alert, whatever came before: a person who mistyped in panic is never
//! silenced (a spoofed sender must also guess the word).

use avisa_core::messages;
use avisa_core::{Language, PhoneNumber, now_millis};
use avisa_store::{Budget, MessageKind, NewMessage, Purpose};
use uuid::Uuid;

use crate::alerting::{Raise, raise};
use crate::error::ApiResult;
use crate::state::AppState;

/// Handles one inbound SMS. `reference` is the provider's message id, used
/// as the idempotency key so a webhook delivered twice raises one alert.
pub async fn inbound(
    state: &AppState,
    from: &str,
    text: &str,
    reference: Option<&str>,
) -> ApiResult<()> {
    let Ok(sender) = PhoneNumber::parse(from) else {
        tracing::info!("inbound SMS from an unparseable sender ignored");
        return Ok(());
    };
    let now = now_millis();
    let person = state.store.person_by_phone(&sender).await?;
    let word = text.trim();
    let matched = person.filter(|p| {
        p.profile
            .keyword
            .as_deref()
            .is_some_and(|k| !word.is_empty() && k.eq_ignore_ascii_case(word))
    });
    if let Some(person) = matched {
        let key = match reference.filter(|r| !r.is_empty() && r.len() <= 100) {
            Some(r) => format!("sms:{r}"),
            // Without a provider id, one alert per sender and minute.
            None => {
                let minute = now / 60_000;
                let mac = state
                    .store
                    .vault()
                    .blind_index("sms-trigger", format!("{sender}:{minute}").as_bytes());
                format!(
                    "sms:{}",
                    mac.iter()
                        .take(12)
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )
            }
        };
        let location = state.store.last_location(person.id).await?;
        match raise(
            state,
            Raise {
                person,
                device_id: None,
                idempotency_key: key,
                source: avisa_core::AlertSource::Sms,
                practice: false,
                pressed_at: None,
                location,
                seen: None,
                missed_checkin: None,
                quiet: false,
            },
        )
        .await
        {
            Ok(_) => {
                state.dispatch_wake.notify_one();
                return Ok(());
            }
            Err(e) => {
                // Rate limited or an incomplete profile: fall through to the
                // neutral reply, which tells the sender nothing was raised.
                tracing::warn!(error = %e, "SMS keyword matched but no alert was raised");
            }
        }
    } else {
        tracing::info!("inbound SMS raised no alert");
    }
    metrics::counter!("avisa_inbound_sms_total", "outcome" => "no_alert").increment(1);
    if !may_reply(state, &sender, reference, now).await? {
        metrics::counter!("avisa_inbound_replies_withheld_total").increment(1);
        return Ok(());
    }
    let reply = NewMessage {
        id: Uuid::now_v7(),
        kind: MessageKind::Reply,
        purpose: Purpose::Reply,
        contact_id: None,
        parent_id: None,
        name: None,
        to: sender,
        body: messages::inbound_not_recognised(),
        language: Language::Es,
        rank: avisa_store::RANK_AFTER_ALERTS,
        expires_at: now + crate::config::millis(state.config.sms.validity),
    };
    state.store.enqueue(&[reply], now).await?;
    state.dispatch_wake.notify_one();
    Ok(())
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Whether a text that raised nothing may be answered (see the module's
/// notes): each budget is taken only when the ones before it allow.
async fn may_reply(
    state: &AppState,
    sender: &PhoneNumber,
    reference: Option<&str>,
    now: i64,
) -> ApiResult<bool> {
    let store = &state.store;
    let limits = &state.config.limits;
    let allowed_country = sender.country().is_some_and(|c| {
        limits
            .code_countries
            .iter()
            .any(|k| k.eq_ignore_ascii_case(c.as_str()))
    });
    if !allowed_country || sender.check_sms_allowed("from").is_err() {
        return Ok(false);
    }
    let phone = sender.as_str().as_bytes();
    // Five texts that raised nothing in an hour: quiet for the hour.
    let (hour, _) = avisa_store::window(now, HOUR_MS);
    let guesses = [Budget::of(store, "inbound-miss", phone, 5)];
    if store.take_budgets(&guesses, hour).await?.is_some() {
        return Ok(false);
    }
    let (day, _) = avisa_store::window(now, DAY_MS);
    if let Some(id) = reference.filter(|r| !r.is_empty()) {
        let once = [Budget::of(store, "inbound-id", id.as_bytes(), 1)];
        if store.take_budgets(&once, day).await?.is_some() {
            return Ok(false);
        }
    }
    let daily = [Budget::of(store, "reply", phone, 1)];
    Ok(store.take_budgets(&daily, day).await?.is_none())
}
