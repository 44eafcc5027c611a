//! The voice line: a person whose phone was taken calls Avisa's number from
//! any phone (a detention facility's, a borrowed one), dials their number
//! and their PIN, and their alert goes out ([`crate::help`]).
//!
//! Twilio Voice calls `POST /hooks/twilio/voice` when the call comes in;
//! each answer is TwiML: a `<Gather>` that asks in Spanish, then English,
//! and names the next step's URL. The number typed travels from the first
//! step to the second sealed in that URL (bound to the call's `CallSid`,
//! for five minutes), so any instance can take any step and nothing about
//! a call is stored. Every request is signed by Twilio like the SMS
//! webhooks. Three tries per call; the words never say whether a number is
//! registered.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use avisa_core::{AlertSource, PhoneNumber, now_millis};

use crate::error::ApiResult;
use crate::help::{self, Outcome};
use crate::hooks::{twilio_params, url_decode_pairs};
use crate::state::AppState;

/// Tries per call: a number Twilio could not read, or a wrong pair.
const TRIES: u32 = 3;

/// How long the number typed stays good for its PIN.
const STEP_MS: i64 = 5 * 60_000;

const ASK_NUMBER_ES: &str = "Avisa. Para enviar su alerta, marque el número de teléfono que registró en Avisa, con sus diez dígitos, y después la tecla de gato.";
const ASK_NUMBER_EN: &str =
    "To send your alert, dial the phone number you registered with Avisa, then the pound key.";
const ASK_PIN_ES: &str = "Ahora marque su PIN de Avisa y después la tecla de gato.";
const ASK_PIN_EN: &str = "Now dial your Avisa PIN, then the pound key.";
const NOT_READ_ES: &str = "No recibimos un número completo.";
const WRONG_ES: &str = "El número o el PIN no son correctos.";
const WRONG_EN: &str = "The number or the PIN is not right.";
const EXPIRED_ES: &str = "Pasó demasiado tiempo. Vuelva a llamar, por favor.";
const LATER_ES: &str = "Demasiados intentos desde este teléfono. Intente de nuevo en una hora, o llame a la línea del consulado:";
const GOODBYE_ES: &str = "Adiós.";
const ACTIVE_ES: &str = "Su consulado ya tiene su alerta activa. No está solo: le están buscando.";
const INCOMPLETE_ES: &str = "Su perfil de Avisa no está completo y no se pudo enviar la alerta. Llame a la línea del consulado:";

/// The consulates' 24-hour line, digit by digit, as a voice reads it.
fn line_spoken() -> String {
    let digits: Vec<String> = avisa_core::messages::CIAM_PHONE
        .chars()
        .filter(char::is_ascii_digit)
        .map(String::from)
        .collect();
    digits.join(" ")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn say_es(text: &str) -> String {
    format!("<Say language=\"es-MX\">{}</Say>", escape(text))
}

fn say_en(text: &str) -> String {
    format!("<Say language=\"en-US\">{}</Say>", escape(text))
}

/// Asks for digits ending in "#", then posts them (or nothing, after the
/// timeout) to `action`.
fn gather(action: &str, es: &str, en: &str) -> String {
    format!(
        "<Gather input=\"dtmf\" finishOnKey=\"#\" timeout=\"10\" actionOnEmptyResult=\"true\" \
         method=\"POST\" action=\"{}\">{}{}</Gather>",
        escape(action),
        say_es(es),
        say_en(en)
    )
}

fn twiml(verbs: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{verbs}</Response>"),
    )
        .into_response()
}

fn hang_up(text: &str) -> Response {
    twiml(format!("{}{}<Hangup/>", say_es(text), say_es(GOODBYE_ES)))
}

fn url(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.config.public_url.trim_end_matches('/'))
}

fn number_step(state: &AppState, tries: u32) -> String {
    url(state, &format!("/hooks/twilio/voice/number?try={tries}"))
}

fn query_value(uri: &Uri, key: &str) -> Option<String> {
    uri.query()
        .map(url_decode_pairs)
        .and_then(|q| q.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
}

fn digits_of(params: &std::collections::HashMap<String, String>) -> String {
    params
        .get("Digits")
        .map(|d| d.chars().filter(char::is_ascii_digit).collect())
        .unwrap_or_default()
}

/// The number typed, sealed for the PIN step of this call.
fn seal_step(state: &AppState, call: &str, typed: &str, tries: u32) -> Option<String> {
    let plain = format!("{typed};{};{tries}", now_millis() + STEP_MS);
    state
        .store
        .vault()
        .seal_str(&format!("voice-call:{call}"), &plain)
        .ok()
        .map(|s| URL_SAFE_NO_PAD.encode(s))
}

/// (number typed, tries so far), when the step is this call's and on time.
fn open_step(state: &AppState, call: &str, token: &str) -> Option<(String, u32)> {
    let sealed = URL_SAFE_NO_PAD.decode(token).ok()?;
    let plain = state
        .store
        .vault()
        .open_string(&format!("voice-call:{call}"), &sealed)
        .ok()?;
    let mut parts = plain.split(';');
    let typed = parts.next()?.to_string();
    let expires: i64 = parts.next()?.parse().ok()?;
    let tries: u32 = parts.next()?.parse().ok()?;
    (expires > now_millis()).then_some((typed, tries))
}

/// The fields of Twilio's voice webhook that Avisa reads (the handler reads
/// the raw form: the signature covers every field as sent).
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct TwilioVoiceForm {
    /// The call's id.
    CallSid: Option<String>,
    /// The calling number, E.164 (may be withheld).
    From: Option<String>,
    /// The keys pressed, on a `<Gather>`'s action.
    Digits: Option<String>,
}

/// A call to Avisa's number comes in: asks for the person's number.
#[utoipa::path(post, path = "/hooks/twilio/voice", tag = "webhooks",
    request_body(content = TwilioVoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "TwiML: a <Gather> for the number", content_type = "text/xml"),
              (status = 403, description = "not signed by Twilio", body = crate::api::ErrorBody),
              (status = 404, description = "Twilio is not a gateway here", body = crate::api::ErrorBody)))]
pub async fn twilio_voice(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    twilio_params(&state, &uri, &headers, &body)?;
    metrics::counter!("avisa_voice_calls_total").increment(1);
    Ok(twiml(gather(
        &number_step(&state, 0),
        ASK_NUMBER_ES,
        ASK_NUMBER_EN,
    )))
}

/// The number dialled: asks for the PIN (the same whether the number is
/// registered or not).
#[utoipa::path(post, path = "/hooks/twilio/voice/number", tag = "webhooks",
    params(("try" = Option<String>, Query, description = "tries so far in this call (Avisa's own URL); anything that is not a small number counts as none: a caller always hears an answer, never an error")),
    request_body(content = TwilioVoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "TwiML: a <Gather> for the PIN, or for the number again", content_type = "text/xml"),
              (status = 403, description = "not signed by Twilio", body = crate::api::ErrorBody),
              (status = 404, description = "Twilio is not a gateway here", body = crate::api::ErrorBody)))]
pub async fn twilio_voice_number(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let params = twilio_params(&state, &uri, &headers, &body)?;
    let tries: u32 = query_value(&uri, "try")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let call = params.get("CallSid").cloned().unwrap_or_default();
    let typed = digits_of(&params);
    if PhoneNumber::candidates(&typed).is_empty() {
        if tries + 1 >= TRIES {
            return Ok(hang_up(NOT_READ_ES));
        }
        return Ok(twiml(format!(
            "{}{}",
            say_es(NOT_READ_ES),
            gather(
                &number_step(&state, tries + 1),
                ASK_NUMBER_ES,
                ASK_NUMBER_EN
            )
        )));
    }
    let Some(token) = seal_step(&state, &call, &typed, tries) else {
        return Ok(hang_up(EXPIRED_ES));
    };
    let action = url(&state, &format!("/hooks/twilio/voice/pin?s={token}"));
    Ok(twiml(gather(&action, ASK_PIN_ES, ASK_PIN_EN)))
}

/// The PIN dialled: with the right pair, the alert goes out and the caller
/// hears where; otherwise the same words for every wrong pair.
#[utoipa::path(post, path = "/hooks/twilio/voice/pin", tag = "webhooks",
    params(("s" = Option<String>, Query, description = "the number typed, sealed for this call (Avisa's own URL); without it, or expired, the caller hears to call again: never an error")),
    request_body(content = TwilioVoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "TwiML: what was sent, or a new try", content_type = "text/xml"),
              (status = 403, description = "not signed by Twilio", body = crate::api::ErrorBody),
              (status = 404, description = "Twilio is not a gateway here", body = crate::api::ErrorBody)))]
pub async fn twilio_voice_pin(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let params = twilio_params(&state, &uri, &headers, &body)?;
    let call = params.get("CallSid").cloned().unwrap_or_default();
    let Some((typed, tries)) =
        query_value(&uri, "s").and_then(|token| open_step(&state, &call, &token))
    else {
        return Ok(hang_up(EXPIRED_ES));
    };
    // A withheld caller id still gets its try, counted under one name.
    let caller = params
        .get("From")
        .and_then(|f| PhoneNumber::parse(f).ok())
        .unwrap_or_else(|| PhoneNumber::from_e164_unchecked("withheld".into()));
    let pin = digits_of(&params);
    let outcome = help::attempt(
        &state,
        &caller,
        &typed,
        &pin,
        AlertSource::Call,
        format!("call:{call}"),
    )
    .await?;
    Ok(match outcome {
        Outcome::Raised {
            contacts,
            consulate,
        } => {
            let to_whom = match consulate {
                Some(c) => format!("y al {c}"),
                None => "y a la línea del consulado".into(),
            };
            let es = format!(
                "Listo. Su alerta fue enviada a {contacts} {} {to_whom}. Le van a buscar. Puede colgar.",
                if contacts == 1 {
                    "contacto"
                } else {
                    "contactos"
                }
            );
            let en = format!(
                "Done. Your alert was sent to {contacts} contact{} and to the consulate.",
                if contacts == 1 { "" } else { "s" }
            );
            twiml(format!("{}{}<Hangup/>", say_es(&es), say_en(&en)))
        }
        Outcome::AlreadyActive => hang_up(ACTIVE_ES),
        Outcome::Incomplete => hang_up(&format!("{INCOMPLETE_ES} {}.", line_spoken())),
        Outcome::CallerLimited => hang_up(&format!("{LATER_ES} {}.", line_spoken())),
        Outcome::Refused if tries + 1 >= TRIES => twiml(format!(
            "{}{}{}<Hangup/>",
            say_es(WRONG_ES),
            say_en(WRONG_EN),
            say_es(GOODBYE_ES)
        )),
        Outcome::Refused => twiml(format!(
            "{}{}",
            say_es(WRONG_ES),
            gather(
                &number_step(&state, tries + 1),
                ASK_NUMBER_ES,
                ASK_NUMBER_EN
            )
        )),
    })
}

/// The voice line's webhooks, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(twilio_voice))
        .routes(routes!(twilio_voice_number))
        .routes(routes!(twilio_voice_pin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_is_escaped() {
        assert_eq!(
            say_es("a < b & \"c\""),
            "<Say language=\"es-MX\">a &lt; b &amp; &quot;c&quot;</Say>"
        );
        let g = gather("https://x/h?a=1&b=2", "uno", "one");
        assert!(g.contains("action=\"https://x/h?a=1&amp;b=2\""), "{g}");
        assert!(g.contains("finishOnKey=\"#\""), "{g}");
    }
}
