//! Twilio's Programmable Messaging API.
//!
//! `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with
//! `To`, `From` (or `MessagingServiceSid`), `Body` and `StatusCallback`,
//! Basic auth with the account SID and auth token. The status callback URL
//! carries our message id (`ref`), so a receipt finds its message even when
//! it arrives before the send is recorded, and a duplicate send after a crash
//! is recognisable. Webhooks are signed: [`signature`] computes
//! `X-Twilio-Signature` as Twilio documents it (HMAC-SHA1 over the full URL
//! followed by the POST parameters sorted by name, base64).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha1::Sha1;

use crate::http::{client, retry_after, transport_error};
use crate::{Accepted, Gateway, GatewayError, OutgoingSms};

#[derive(Clone)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` in production; a local server in tests.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    /// The sending number (E.164), or
    pub from: Option<String>,
    /// a Messaging Service SID instead.
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts status callbacks (`…/hooks/twilio/status`), if any.
    pub status_callback: Option<String>,
    pub timeout: Duration,
}

pub struct TwilioGateway {
    config: TwilioConfig,
    http: reqwest::Client,
    url: String,
}

#[derive(Deserialize)]
struct MessageResource {
    sid: String,
}

/// A message as Twilio lists it (`GET …/Messages.json`).
#[derive(Deserialize)]
struct ListedMessage {
    sid: String,
    body: Option<String>,
    date_created: Option<String>,
}

#[derive(Deserialize)]
struct MessageList {
    messages: Vec<ListedMessage>,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioGateway {
    pub fn new(config: TwilioConfig) -> Result<Self, reqwest::Error> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            config.base_url.trim_end_matches('/'),
            config.account_sid
        );
        Ok(TwilioGateway {
            http: client(config.timeout)?,
            config,
            url,
        })
    }
}

#[async_trait]
impl Gateway for TwilioGateway {
    fn name(&self) -> &str {
        "twilio"
    }

    /// After a send left in doubt: Twilio's newest messages to the same
    /// number, the one with the same text created since the first try.
    async fn find(&self, sms: &OutgoingSms, since_ms: i64) -> Result<Vec<Accepted>, GatewayError> {
        let response = self
            .http
            .get(&self.url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .query(&[("To", sms.to.as_str()), ("PageSize", "50")])
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        if !response.status().is_success() {
            return Err(GatewayError::Retryable {
                reason: format!("twilio {} listing messages", response.status().as_u16()),
                retry_after: retry_after(response.headers()),
            });
        }
        let list: MessageList = response.json().await.map_err(|_| GatewayError::Retryable {
            reason: "twilio: an unreadable message list".into(),
            retry_after: None,
        })?;
        // Twilio's times are whole seconds; two of slack for the clocks.
        let since = since_ms / 1000 - 2;
        Ok(list
            .messages
            .into_iter()
            .filter(|m| {
                m.body.as_deref() == Some(sms.body.as_str())
                    && m.date_created.as_deref().is_some_and(|d| {
                        time::OffsetDateTime::parse(
                            d,
                            &time::format_description::well_known::Rfc2822,
                        )
                        .is_ok_and(|t| t.unix_timestamp() >= since)
                    })
            })
            .map(|m| Accepted { provider_id: m.sid })
            .collect())
    }

    /// The newest message of the account (`PageSize=1`): authenticated,
    /// cheap, and in the Messages contract the fake serves.
    async fn probe(&self) -> Option<bool> {
        let answer = self
            .http
            .get(&self.url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .query(&[("PageSize", "1")])
            .send()
            .await;
        Some(answer.is_ok_and(|r| r.status().is_success()))
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<Accepted, GatewayError> {
        let mut form: Vec<(&str, String)> =
            vec![("To", sms.to.to_string()), ("Body", sms.body.clone())];
        match (&self.config.messaging_service_sid, &self.config.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service.clone())),
            (None, Some(from)) => form.push(("From", from.clone())),
            (None, None) => {
                return Err(GatewayError::Permanent {
                    reason: "twilio: neither from nor messaging_service_sid is configured".into(),
                });
            }
        }
        if let Some(cb) = &self.config.status_callback {
            form.push(("StatusCallback", format!("{cb}?ref={}", sms.id)));
        }
        if let Some(valid) = sms.valid_for {
            // Twilio takes 1 to 36,000 seconds; past it, the message is not sent.
            form.push((
                "ValidityPeriod",
                valid.as_secs().clamp(1, 36_000).to_string(),
            ));
        }
        let response = self
            .http
            .post(&self.url)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        if status.is_success() {
            // Taken is taken: an answer we cannot read still says Twilio has
            // the message, and sending it again would send it twice. Its id
            // is unknown (receipts still match by our `ref`).
            return Ok(Accepted {
                provider_id: match response.json::<MessageResource>().await {
                    Ok(resource) => resource.sid,
                    Err(_) => {
                        tracing::warn!(
                            "twilio accepted a message with an unreadable answer: sent, id unknown"
                        );
                        String::new()
                    }
                },
            });
        }
        let detail = response.json::<TwilioError>().await.ok();
        let number = detail.as_ref().and_then(|d| d.code);
        let code = number.map(|c| format!(" {c}")).unwrap_or_default();
        let text = detail
            .and_then(|d| d.message)
            .map(|m| {
                format!(
                    ": {}",
                    crate::redact_numbers(&m.chars().take(120).collect::<String>())
                )
            })
            .unwrap_or_default();
        let reason = format!("twilio {}{code}{text}", status.as_u16());
        // The recipient's own refusals, final on every gateway: 21610 the
        // number replied STOP; 21211 / 21614 it is not a valid (mobile)
        // number.
        match number {
            Some(21610) => {
                return Err(GatewayError::Recipient {
                    reason: format!("opted_out: {reason}"),
                    opted_out: true,
                });
            }
            Some(21211 | 21614) => {
                return Err(GatewayError::Recipient {
                    reason: format!("invalid_number: {reason}"),
                    opted_out: false,
                });
            }
            _ => {}
        }
        Err(match status.as_u16() {
            // Our credentials or account (20003 authenticate, 20404 an
            // account SID that does not exist): the gateway's fault.
            401 => GatewayError::Account { reason },
            403 | 404 if matches!(number, Some(20003 | 20404)) => GatewayError::Account { reason },
            429 => GatewayError::Retryable {
                reason,
                retry_after: wait,
            },
            500..=599 => GatewayError::Retryable {
                reason,
                retry_after: wait,
            },
            _ => GatewayError::Permanent { reason },
        })
    }
}

/// `X-Twilio-Signature` for a request to `url` with form `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a webhook's signature in constant time, as Twilio's own
/// `RequestValidator` does: over the URL as given and over the same URL with
/// its scheme's default port written out (`https` 443, `http` 80) or taken
/// away, since Twilio may sign either form.
pub fn signature_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    given: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let check = |url: &str| {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
            .expect("HMAC accepts any key length");
        mac.update(url.as_bytes());
        for (k, v) in &sorted {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
        mac.verify_slice(&given).is_ok()
    };
    // Both forms are always checked, so the time taken says nothing.
    let as_given = check(url);
    let other = url_other_form(url).is_some_and(|u| check(&u));
    as_given | other
}

/// The URL with its scheme's default port added, or removed when it is
/// written out; None when it names another port or is not http(s).
fn url_other_form(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port follows the last ':' after any IPv6 literal's ']'.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rsplit_once(':') {
        Some((host, port)) if port == default => {
            Some(format!("{scheme}://{}{host}{tail}", &authority[..host_end]))
        }
        Some(_) => None,
        None => Some(format!("{scheme}://{authority}:{default}{tail}")),
    }
}

/// What a Twilio `MessageStatus` means for a message.
pub fn status_of(message_status: &str) -> Option<crate::Receipt> {
    match message_status {
        "sent" => Some(crate::Receipt::Sent),
        "delivered" | "read" => Some(crate::Receipt::Delivered),
        "undelivered" | "failed" | "canceled" => Some(crate::Receipt::Failed),
        _ => None, // queued, accepted, sending, scheduled: nothing new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Twilio's own request-validation snippets (token 12345).
    #[test]
    fn signature_matches_twilios_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let sig = signature("12345", url, &params);
        assert_eq!(sig, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        assert!(signature_valid("12345", url, &params, &sig));
        assert!(!signature_valid("12346", url, &params, &sig));
        assert!(!signature_valid(
            "12345",
            "https://mycompany.com/other",
            &params,
            &sig
        ));
        assert!(!signature_valid("12345", url, &params, "not base64!"));
    }

    /// Twilio's `RequestValidator` accepts a request signed over the URL
    /// with or without the default port: so does Avisa, both ways.
    #[test]
    fn a_signature_over_either_form_of_the_default_port_is_accepted() {
        let params = vec![("Body".to_string(), "STOP".to_string())];
        let bare = "https://avisa.example.org/hooks/twilio/inbound?x=1";
        let ported = "https://avisa.example.org:443/hooks/twilio/inbound?x=1";
        let over_ported = signature("tok", ported, &params);
        let over_bare = signature("tok", bare, &params);
        assert!(signature_valid("tok", bare, &params, &over_ported));
        assert!(signature_valid("tok", ported, &params, &over_bare));
        // Another port, or another scheme's default, is another URL.
        let other = signature(
            "tok",
            "https://avisa.example.org:8443/hooks/twilio/inbound?x=1",
            &params,
        );
        assert!(!signature_valid("tok", bare, &params, &other));
        let http80 = signature(
            "tok",
            "http://avisa.example.org:80/hooks/twilio/inbound?x=1",
            &params,
        );
        assert!(!signature_valid("tok", bare, &params, &http80));
        assert!(signature_valid(
            "tok",
            "http://avisa.example.org/hooks/twilio/inbound?x=1",
            &params,
            &http80
        ));
        assert_eq!(
            url_other_form("http://[::1]:80/a").as_deref(),
            Some("http://[::1]/a")
        );
        assert_eq!(
            url_other_form("https://[::1]/a").as_deref(),
            Some("https://[::1]:443/a")
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(status_of("delivered"), Some(crate::Receipt::Delivered));
        assert_eq!(status_of("undelivered"), Some(crate::Receipt::Failed));
        assert_eq!(status_of("queued"), None);
    }
}
