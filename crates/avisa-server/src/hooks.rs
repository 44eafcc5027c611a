//! Gateway webhooks: delivery receipts and inbound SMS.
//!
//! Twilio's are signed (`X-Twilio-Signature`, checked against the URL Twilio
//! called: our `public_url` plus the path and query). Kannel's DLR URL carries
//! a signature of the message id made with a key derived from the data key;
//! its inbound URL carries a configured token. A request that fails these
//! checks is 403 and changes nothing.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;

use crate::extract::ApiQuery;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use uuid::Uuid;

use avisa_core::now_millis;
use avisa_sms::{Receipt, kannel, twilio};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::trigger;

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

fn forbidden() -> ApiError {
    ApiError::Forbidden {
        code: "bad_signature",
        message: "the request is not signed by the gateway".into(),
    }
}

/// Parses a form body and checks Twilio's signature over it.
pub(crate) fn twilio_params(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<HashMap<String, String>> {
    let token = state
        .config
        .sms
        .twilio()
        .map(|t| t.auth_token.expose_secret())
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::NotFound);
    }
    let pairs: Vec<(String, String)> = form_urlencoded(body);
    let url = format!(
        "{}{}",
        state.config.public_url.trim_end_matches('/'),
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !twilio::signature_valid(token, &url, &pairs, given) {
        tracing::warn!("twilio webhook with a bad signature refused");
        metrics::counter!("avisa_webhooks_refused_total", "gateway" => "twilio").increment(1);
        return Err(forbidden());
    }
    Ok(pairs.into_iter().collect())
}

/// Every pair of a form body, in order (Twilio signs every pair, repeated
/// keys included).
fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    url_decode_pairs(std::str::from_utf8(body).unwrap_or(""))
}

pub(crate) fn url_decode_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn apply_receipt(
    state: &AppState,
    id: Uuid,
    provider_id: Option<&str>,
    receipt: Receipt,
    reason: Option<&str>,
) -> ApiResult<()> {
    let (to, from) = receipt.transition();
    match state
        .store
        .receipt(id, provider_id, to, from, reason, now_millis())
        .await?
    {
        Some(alert) => {
            metrics::counter!("avisa_receipts_total", "status" => to.as_str()).increment(1);
            if let Some(alert) = alert {
                state.events.publish(alert);
            }
        }
        None if state
            .store
            .keep_receipt(id, provider_id, to, reason, now_millis())
            .await? =>
        {
            // The message is back in the queue (its send timed out and the
            // provider is still to be asked): kept, and applied when the
            // send is recorded, never dropped.
            metrics::counter!("avisa_receipts_kept_total").increment(1);
            tracing::info!(
                status = to.as_str(),
                "a receipt kept until its send is recorded"
            );
        }
        None => {
            // An older status arriving late, or a receipt for another copy
            // of the message (its provider id is not the one recorded).
            tracing::info!(
                status = to.as_str(),
                "a receipt changed nothing: late, or another copy's"
            );
            metrics::counter!("avisa_receipts_ignored_total").increment(1);
        }
    }
    Ok(())
}

/// A field a webhook must carry: 422 when it is missing (checked after the
/// signature or token, so a stranger learns nothing from it).
fn required<'a>(params: &'a HashMap<String, String>, field: &'static str) -> ApiResult<&'a str> {
    params.get(field).map(String::as_str).ok_or_else(|| {
        avisa_core::Invalid::new(field, "required", format!("{field} is required")).into()
    })
}

/// The fields of Twilio's status callback that Avisa reads (the handler
/// reads the raw form: the signature covers every field as sent).
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct TwilioStatusForm {
    MessageSid: String,
    /// queued, sending, sent, delivered, undelivered or failed.
    MessageStatus: String,
    ErrorCode: Option<String>,
}

/// The fields of Twilio's incoming-message webhook that Avisa reads.
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct TwilioInboundForm {
    /// The sender's number, E.164.
    From: String,
    /// The text (empty for a message with only media).
    Body: String,
    MessageSid: String,
    /// STOP, START or HELP when Twilio's Advanced Opt-Out recognised the
    /// message.
    OptOutType: Option<String>,
}

/// Twilio's status callback for a message (`ref` is Avisa's message id),
/// signed with `X-Twilio-Signature`.
#[utoipa::path(post, path = "/hooks/twilio/status", tag = "webhooks",
    params(("ref" = Option<String>, Query, description = "Avisa's message id; one that does not read as a UUID is ignored and the receipt is matched by MessageSid (a receipt is never refused for it)")),
    request_body(content = TwilioStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 204),
              (status = 403, description = "not signed by Twilio", body = crate::api::ErrorBody),
              (status = 404, description = "Twilio is not a gateway here", body = crate::api::ErrorBody),
              (status = 422, description = "signed, but a required field is missing", body = crate::api::ErrorBody)))]
pub async fn twilio_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let params = twilio_params(&state, &uri, &headers, &body)?;
    required(&params, "MessageSid")?;
    required(&params, "MessageStatus")?;
    let reference = uri
        .query()
        .map(url_decode_pairs)
        .and_then(|q| q.into_iter().find(|(k, _)| k == "ref").map(|(_, v)| v))
        .and_then(|v| Uuid::parse_str(&v).ok());
    let status = params
        .get("MessageStatus")
        .map(String::as_str)
        .unwrap_or("");
    if let (Some(id), Some(receipt)) = (reference, twilio::status_of(status)) {
        let reason = params
            .get("ErrorCode")
            .filter(|c| !c.is_empty())
            .map(|c| format!("twilio error {c}"));
        let sid = params.get("MessageSid").map(String::as_str);
        apply_receipt(&state, id, sid, receipt, reason.as_deref()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An SMS to the service number, through Twilio (signed with
/// `X-Twilio-Signature`): the keyword raises the sender's alert.
#[utoipa::path(post, path = "/hooks/twilio/inbound", tag = "webhooks",
    request_body(content = TwilioInboundForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "empty TwiML", content_type = "text/xml"),
              (status = 403, description = "not signed by Twilio", body = crate::api::ErrorBody),
              (status = 404, description = "Twilio is not a gateway here", body = crate::api::ErrorBody),
              (status = 422, description = "signed, but a required field is missing", body = crate::api::ErrorBody)))]
pub async fn twilio_inbound(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let params = twilio_params(&state, &uri, &headers, &body)?;
    let from = required(&params, "From")?;
    required(&params, "Body")?;
    required(&params, "MessageSid")?;
    // Twilio's Advanced Opt-Out names what it recognised (and answers it
    // itself): recorded here for every gateway, and nothing else is done.
    let consent = match params.get("OptOutType").map(String::as_str) {
        Some("STOP") => Some(trigger::Consent::OptOut),
        Some("START") => Some(trigger::Consent::OptIn),
        // Twilio answered it; nothing of ours.
        Some("HELP") => {
            return Ok(([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response());
        }
        _ => None,
    };
    if let Some(consent) = consent {
        if let Ok(sender) = avisa_core::PhoneNumber::parse(from) {
            trigger::record_consent(&state, &sender, consent).await?;
        }
        return Ok(([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response());
    }
    let text = params.get("Body").map(String::as_str).unwrap_or("");
    let reference = params.get("MessageSid").map(String::as_str);
    trigger::inbound(&state, trigger::Via::Twilio, from, text, reference).await?;
    Ok(([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response())
}

/// The signature a Kannel DLR URL carries for a message id.
pub fn kannel_dlr_signature(state_vault: &avisa_core::crypto::Vault, id: Uuid) -> String {
    state_vault
        .blind_index("kannel-dlr", id.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Kannel's delivery report for a message, on the signed URL Avisa gave it.
/// Other query parameters are ignored: an operator's dlr-url may carry more
/// of Kannel's escapes, and a receipt must not be lost for that.
#[utoipa::path(get, path = "/hooks/kannel/dlr", tag = "webhooks",
    params(("id" = Uuid, Query, description = "Avisa's message id"),
           ("sig" = String, Query, description = "the URL's signature"),
           ("status" = Option<u32>, Query, description = "Kannel's DLR type (1 delivered, 2 failed, 8 SMSC ack, 16 SMSC reject)")),
    responses((status = 200),
              (status = 403, description = "bad signature", body = crate::api::ErrorBody)))]
pub async fn kannel_dlr(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let id = q
        .get("id")
        .and_then(|v| Uuid::parse_str(v).ok())
        .ok_or_else(forbidden)?;
    let expected = kannel_dlr_signature(state.store.vault(), id);
    let given = q.get("sig").map(String::as_str).unwrap_or("");
    if !avisa_core::crypto::constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        tracing::warn!("kannel DLR with a bad signature refused");
        metrics::counter!("avisa_webhooks_refused_total", "gateway" => "kannel").increment(1);
        return Err(forbidden());
    }
    let code: u32 = q.get("status").and_then(|s| s.parse().ok()).unwrap_or(0);
    if let Some(receipt) = kannel::dlr_status(code) {
        let reason = (receipt == Receipt::Failed).then(|| format!("kannel DLR {code}"));
        apply_receipt(&state, id, None, receipt, reason.as_deref()).await?;
    }
    Ok(StatusCode::OK)
}

/// An SMS to the service number, through Kannel's sms-service: the keyword
/// raises the sender's alert. The answer's body is the reply Kannel sends
/// back (with `max-messages = 1`, `omit-empty = true`): empty but for a
/// STOP's one confirmation and HELP's answer. Other query parameters are
/// ignored: an operator's sms-service get-url may carry more of Kannel's
/// escapes (`%P`, `%t`…), and a person's keyword must never be refused for
/// that.
#[utoipa::path(get, path = "/hooks/kannel/inbound", tag = "webhooks",
    params(("token" = String, Query, description = "the configured inbound_token"),
           ("from" = String, Query, description = "the sender's number"),
           ("text" = String, Query, description = "the message"),
           ("id" = Option<String>, Query, description = "Kannel's message id")),
    responses((status = 200, description = "the reply for Kannel to send back; empty for none", content_type = "text/plain", body = String),
              (status = 403, description = "bad token", body = crate::api::ErrorBody),
              (status = 422, description = "a right token, but `from` or `text` is missing", body = crate::api::ErrorBody)))]
pub async fn kannel_inbound(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<(StatusCode, String)> {
    let token = state
        .config
        .sms
        .kannel()
        .map(|k| k.inbound_token.expose_secret())
        .unwrap_or_default();
    let given = q.get("token").map(String::as_str).unwrap_or("");
    if token.is_empty() || !avisa_core::crypto::constant_time_eq(token.as_bytes(), given.as_bytes())
    {
        tracing::warn!("kannel inbound SMS with a bad token refused");
        metrics::counter!("avisa_webhooks_refused_total", "gateway" => "kannel").increment(1);
        return Err(forbidden());
    }
    let from = required(&q, "from")?;
    let text = required(&q, "text")?;
    let id = q.get("id").map(String::as_str);
    let answer = trigger::inbound(&state, trigger::Via::Kannel, from, text, id).await?;
    // Empty unless the carriers' rules want an answer now; every other reply
    // goes through the outbox.
    Ok((StatusCode::OK, answer.unwrap_or_default()))
}

/// The gateways' webhooks, with their OpenAPI operations.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(twilio_status))
        .routes(routes!(twilio_inbound))
        .routes(routes!(kannel_dlr))
        .routes(routes!(kannel_inbound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        assert_eq!(
            url_decode_pairs("From=%2B12135550100&Body=hola+mundo%21&Empty="),
            vec![
                ("From".to_string(), "+12135550100".to_string()),
                ("Body".to_string(), "hola mundo!".to_string()),
                ("Empty".to_string(), String::new())
            ]
        );
        assert_eq!(decode("%C3%B1and%C3%BA"), "ñandú");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
