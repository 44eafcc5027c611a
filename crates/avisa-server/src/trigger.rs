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
//!
//! STOP (and the carriers' other opt-out words, in English and Spanish) as
//! the whole message records that the number wants no more messages, on
//! every gateway; START undoes it ([`consent_word`]). HELP, INFO and AYUDA
//! alone get the operator's help text ([`help_word`]). Where Twilio brought
//! the text it answers STOP and HELP itself; through Kannel Avisa gives the
//! one STOP confirmation and the HELP answer in the webhook's reply
//! ([`Via`]). No neutral reply to any of them.
//!
//! "AYUDA <number> <PIN>" (or "HELP …") from any phone is the voice line by
//! SMS, for a person whose phone was taken: the help line's guard
//! ([`crate::help`]) and, with the right pair, the alert; the phone that
//! asked is told it went out.
//!
//! "SALI <PIN>" (or "OUT <PIN>") from the person's own phone checks out
//! their next check-in timer ([`crate::checkins::checkout_by_sms`]); the
//! answer goes to that phone, whatever it says.

use avisa_core::messages;
use avisa_core::{AlertSource, Channel, Language, PhoneNumber, now_millis};
use avisa_store::{Budget, MessageKind, NewMessage, Purpose};

use crate::error::ApiResult;
use crate::help::Outcome;
use crate::state::AppState;
use avisa_engine::alerting::Raise;

/// Which gateway brought an inbound SMS, and so what it answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Twilio confirms STOP and START and answers HELP itself (its opt-out
    /// handling): Avisa adds nothing of its own to those.
    Twilio,
    /// Kannel answers nothing itself: the one STOP confirmation and the
    /// HELP answer the carriers' rules expect are Avisa's, given in the
    /// webhook's answer (the sms-service's reply).
    Kannel,
}

/// Handles one inbound SMS. `reference` is the provider's message id, used
/// as the idempotency key so a webhook delivered twice raises one alert.
/// Answers the text the gateway should send back at once, if any (only for
/// [`Via::Kannel`]: a STOP's confirmation, HELP's answer); every other
/// reply goes through the outbox.
pub async fn inbound(
    state: &AppState,
    via: Via,
    from: &str,
    text: &str,
    reference: Option<&str>,
) -> ApiResult<Option<String>> {
    let Ok(sender) = PhoneNumber::parse(from) else {
        tracing::info!("inbound SMS from an unparseable sender ignored");
        return Ok(None);
    };
    let now = now_millis();
    let person = state.store.person_by_phone(&sender).await?;
    let word = text.trim();
    // The person's own keyword from their own phone always raises the
    // alert, whatever else the word could mean (a keyword chosen before a
    // word was reserved stays theirs).
    let matched = person.as_ref().is_some_and(|p| {
        p.profile
            .keyword
            .as_deref()
            .is_some_and(|k| !word.is_empty() && k.eq_ignore_ascii_case(word))
    });
    if !matched {
        if let Some(consent) = consent_word(text) {
            record_consent(state, &sender, consent).await?;
            return Ok(match (via, consent) {
                (Via::Kannel, Consent::OptOut) => {
                    answer_once(state, &sender, "optout-confirm", reference, now)
                        .await?
                        .then(messages::opt_out_confirmed)
                }
                _ => None,
            });
        }
        if help_word(text) {
            metrics::counter!("avisa_inbound_sms_total", "outcome" => "help_word").increment(1);
            let help = || messages::help_text(&state.config.sms.help_text);
            return Ok(match via {
                // Twilio answers HELP and INFO itself; AYUDA it does not.
                Via::Twilio if !word.eq_ignore_ascii_case("ayuda") => None,
                Via::Twilio => {
                    if answer_once(state, &sender, "help-reply", reference, now).await? {
                        reply(state, &sender, help(), now).await?;
                    }
                    None
                }
                Via::Kannel => answer_once(state, &sender, "help-reply", reference, now)
                    .await?
                    .then(help),
            });
        }
        if let Some((typed, pin)) = help_request(text) {
            help_by_sms(state, &sender, typed, pin, reference, now).await?;
            return Ok(None);
        }
    }
    if let (false, Some(pin), Some(person)) = (matched, checkout_request(text), person.as_ref()) {
        // A webhook delivered twice checks out (and answers) once: the
        // second copy would take the next timer.
        if !first_delivery(state, reference, now).await? {
            return Ok(None);
        }
        let answer = crate::checkins::checkout_by_sms(state, person, pin).await?;
        reply(state, &sender, answer, now).await?;
        return Ok(None);
    }
    if let (true, Some(person)) = (matched, person) {
        let key = inbound_key(state, "sms", &sender, reference, now);
        let location = state.store.last_location(person.id).await?;
        match state
            .alerting
            .raise(Raise {
                person,
                device_id: None,
                idempotency_key: key,
                source: AlertSource::Sms,
                practice: false,
                pressed_at: None,
                location,
                seen: None,
                missed_checkin: None,
                quiet: false,
                caller: None,
            })
            .await
        {
            Ok(_) => {
                state.dispatch_wake.notify_one();
                return Ok(None);
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
    neutral_reply(state, &sender, reference, now).await?;
    Ok(None)
}

/// HELP, INFO and AYUDA (accents folded) as the whole message: the
/// carriers' rules want them answered with who sends and how to stop.
pub fn help_word(text: &str) -> bool {
    matches!(
        fold(text).as_str(),
        "help" | "info" | "ayuda" | "informacion"
    )
}

/// A whole message as the keyword readers compare it: trimmed, closing
/// punctuation dropped, lower case, Spanish accents folded.
fn fold(text: &str) -> String {
    text.trim()
        .trim_end_matches(['.', '!', '?'])
        .chars()
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'u',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether an answer the carriers' rules expect (a STOP's confirmation,
/// HELP's) may go to `sender`: once per provider message id, once a day per
/// number and `kind`, never to a country codes do not go to or to a
/// premium-rate, toll-free or satellite number.
async fn answer_once(
    state: &AppState,
    sender: &PhoneNumber,
    kind: &'static str,
    reference: Option<&str>,
    now: i64,
) -> ApiResult<bool> {
    if !reply_country(state, sender) {
        return Ok(false);
    }
    if !first_delivery(state, reference, now).await? {
        return Ok(false);
    }
    let (day, _) = avisa_store::window(now, DAY_MS);
    let daily = [Budget::of_number(&state.store, kind, sender, 1)];
    Ok(state.store.take_budgets(&daily, day).await?.is_none())
}

/// What a whole message says about the sender's consent to our messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// STOP and its kin: no more messages to this number, on any gateway.
    OptOut,
    /// START and its kin: messages again.
    OptIn,
}

/// The carriers' opt-out and opt-in words (CTIA; Twilio's defaults) and
/// their Spanish forms, as the whole message, in any case, accents folded.
pub fn consent_word(text: &str) -> Option<Consent> {
    let word = fold(text);
    match word.as_str() {
        "stop" | "stopall" | "unsubscribe" | "cancel" | "end" | "quit" | "alto" | "baja"
        | "parar" | "cancelar" => Some(Consent::OptOut),
        "start" | "unstop" | "alta" => Some(Consent::OptIn),
        _ => None,
    }
}

/// Records a number's STOP or START from any gateway. No reply of our own:
/// a number that said STOP gets no neutral answer (Twilio, and the carrier,
/// confirm it themselves).
pub async fn record_consent(
    state: &AppState,
    sender: &PhoneNumber,
    consent: Consent,
) -> ApiResult<()> {
    match consent {
        Consent::OptOut => {
            state.store.record_opt_out(sender, now_millis()).await?;
            metrics::counter!("avisa_opt_outs_total", "how" => "inbound").increment(1);
            tracing::info!("an inbound STOP recorded: no more messages to that number");
        }
        Consent::OptIn => {
            state.store.clear_opt_out(sender).await?;
            metrics::counter!("avisa_opt_ins_total").increment(1);
            tracing::info!("an inbound START recorded: messages to that number again");
        }
    }
    Ok(())
}

/// The idempotency key of an alert raised by an inbound SMS: the provider's
/// message id, or without one, one alert per sender and minute.
fn inbound_key(
    state: &AppState,
    prefix: &str,
    sender: &PhoneNumber,
    reference: Option<&str>,
    now: i64,
) -> String {
    match reference.filter(|r| !r.is_empty() && r.len() <= 100) {
        Some(r) => format!("{prefix}:{r}"),
        None => {
            let minute = now / 60_000;
            let mac = state
                .store
                .vault()
                .blind_index("sms-trigger", format!("{sender}:{minute}").as_bytes());
            format!(
                "{prefix}:{}",
                mac.iter()
                    .take(12)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        }
    }
}

/// "AYUDA <number> <PIN>" (or "HELP …"): the number as typed and the PIN.
fn help_request(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    let (word, rest) = text.split_once(char::is_whitespace)?;
    if !(word.eq_ignore_ascii_case("ayuda") || word.eq_ignore_ascii_case("help")) {
        return None;
    }
    let (typed, pin) = rest.trim().rsplit_once(char::is_whitespace)?;
    let typed = typed.trim();
    let number_like = typed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    (number_like && typed.chars().any(|c| c.is_ascii_digit()) && !pin.is_empty())
        .then_some((typed, pin))
}

/// "AYUDA <number> <PIN>" from any phone: the help line's guard, then the
/// alert; the phone that asked is told it went out, or gets the neutral
/// reply whatever was wrong.
async fn help_by_sms(
    state: &AppState,
    sender: &PhoneNumber,
    typed: &str,
    pin: &str,
    reference: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    let key = inbound_key(state, "help-sms", sender, reference, now);
    let contacts =
        match crate::help::attempt(state, sender, typed, pin, AlertSource::Sms, key).await? {
            Outcome::Raised { contacts, .. } => Some(contacts),
            Outcome::AlreadyActive => Some(0),
            Outcome::Incomplete | Outcome::Refused | Outcome::CallerLimited => None,
        };
    let Some(contacts) = contacts else {
        return neutral_reply(state, sender, reference, now).await;
    };
    metrics::counter!("avisa_inbound_sms_total", "outcome" => "help").increment(1);
    reply_once(state, sender, messages::help_sent(contacts), reference, now).await
}

/// "SALI <PIN>" / "OUT <PIN>": the PIN of a check-out by SMS.
fn checkout_request(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    let (word, pin) = (words.next()?, words.next()?);
    let is_out = ["sali", "salí", "out", "checkout"]
        .iter()
        .any(|w| word.to_lowercase() == *w);
    (is_out && words.next().is_none() && pin.chars().all(|c| c.is_ascii_digit())).then_some(pin)
}

/// Whether this is the first delivery of the provider's message `reference`
/// today (always, without one).
async fn first_delivery(state: &AppState, reference: Option<&str>, now: i64) -> ApiResult<bool> {
    let Some(id) = reference.filter(|r| !r.is_empty()) else {
        return Ok(true);
    };
    let (day, _) = avisa_store::window(now, DAY_MS);
    let once = [Budget::of(&state.store, "inbound-id", id.as_bytes(), 1)];
    Ok(state.store.take_budgets(&once, day).await?.is_none())
}

/// A reply that must go (it answers something the person did), once per
/// provider message id: a webhook delivered twice is answered once.
async fn reply_once(
    state: &AppState,
    sender: &PhoneNumber,
    body: String,
    reference: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    if !first_delivery(state, reference, now).await? {
        return Ok(());
    }
    reply(state, sender, body, now).await
}

/// The reply that says nothing was raised, within the reply budgets.
async fn neutral_reply(
    state: &AppState,
    sender: &PhoneNumber,
    reference: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    metrics::counter!("avisa_inbound_sms_total", "outcome" => "no_alert").increment(1);
    if !may_reply(state, sender, reference, now).await? {
        metrics::counter!("avisa_inbound_replies_withheld_total").increment(1);
        return Ok(());
    }
    reply(state, sender, messages::inbound_not_recognised(), now).await
}

async fn reply(state: &AppState, sender: &PhoneNumber, body: String, now: i64) -> ApiResult<()> {
    // A fixed text to whoever wrote (perhaps nobody Avisa knows): nobody's.
    let reply = NewMessage::new(
        Channel::Sms,
        MessageKind::Reply,
        Purpose::Reply,
        sender.clone(),
        body,
        Language::Es,
        now + crate::config::millis(state.config.sms.validity),
    );
    state.store.enqueue(&[reply], now).await?;
    state.dispatch_wake.notify_one();
    Ok(())
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Whether a reply may go to `sender` at all: a country codes go to, and
/// not a premium-rate, toll-free or satellite number.
fn reply_country(state: &AppState, sender: &PhoneNumber) -> bool {
    let allowed = sender.country().is_some_and(|c| {
        state
            .config
            .limits
            .code_countries
            .iter()
            .any(|k| k.eq_ignore_ascii_case(c.as_str()))
    });
    allowed && sender.check_sms_allowed("from").is_ok()
}

/// Whether a text that raised nothing may be answered (see the module's
/// notes): each budget is taken only when the ones before it allow.
async fn may_reply(
    state: &AppState,
    sender: &PhoneNumber,
    reference: Option<&str>,
    now: i64,
) -> ApiResult<bool> {
    let store = &state.store;
    if !reply_country(state, sender) {
        return Ok(false);
    }
    // Five texts that raised nothing in an hour: quiet for the hour.
    let (hour, _) = avisa_store::window(now, HOUR_MS);
    let guesses = [Budget::of_number(store, "inbound-miss", sender, 5)];
    if store.take_budgets(&guesses, hour).await?.is_some() {
        return Ok(false);
    }
    if !first_delivery(state, reference, now).await? {
        return Ok(false);
    }
    let (day, _) = avisa_store::window(now, DAY_MS);
    let daily = [Budget::of_number(store, "reply", sender, 1)];
    Ok(store.take_budgets(&daily, day).await?.is_none())
}

#[cfg(test)]
mod tests {
    use super::help_request;

    #[test]
    fn reads_a_help_request() {
        assert_eq!(
            help_request(" ayuda (213) 555-0100  1234 "),
            Some(("(213) 555-0100", "1234"))
        );
        assert_eq!(
            help_request("HELP +52 55 1234 5678 987654"),
            Some(("+52 55 1234 5678", "987654"))
        );
        assert_eq!(help_request("ayuda"), None);
        assert_eq!(help_request("ayuda 1234"), None);
        assert_eq!(help_request("ayuda por favor 1234"), None);
        assert_eq!(help_request("auxilio 2135550100 1234"), None);
    }

    #[test]
    fn reads_a_checkout() {
        use super::checkout_request;
        assert_eq!(checkout_request(" SALÍ 4821 "), Some("4821"));
        assert_eq!(checkout_request("out 12345678"), Some("12345678"));
        assert_eq!(checkout_request("sali"), None);
        assert_eq!(checkout_request("sali 4821 ya"), None);
        assert_eq!(checkout_request("sali ya"), None);
    }
}

#[cfg(test)]
mod consent_tests {
    use super::*;

    #[test]
    fn the_carriers_words_in_both_languages_as_the_whole_message() {
        for w in [
            "STOP",
            "stop",
            " Stop. ",
            "STOPALL",
            "unsubscribe",
            "CANCEL",
            "end",
            "QUIT",
            "ALTO",
            "baja",
            "Parar",
            "CANCELAR",
            "cancelár",
        ] {
            assert_eq!(consent_word(w), Some(Consent::OptOut), "{w}");
        }
        for w in ["START", "unstop", "Alta"] {
            assert_eq!(consent_word(w), Some(Consent::OptIn), "{w}");
        }
        for w in ["stop it", "AUXILIO", "ayuda 2135550100 4821", "", "stopp"] {
            assert_eq!(consent_word(w), None, "{w}");
        }
    }

    #[test]
    fn help_words_alone() {
        for w in ["HELP", "help?", " Info ", "AYUDA", "ayuda!", "Información"] {
            assert!(help_word(w), "{w}");
        }
        for w in ["ayuda 2135550100 4821", "help me", "auxilio", "stop"] {
            assert!(!help_word(w), "{w}");
        }
    }
}
