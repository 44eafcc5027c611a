//! Avisa's SMS gateways.
//!
//! A [`Gateway`] hands one message to a provider and says what happened:
//! accepted (with the provider's id), a failure worth retrying (with an
//! optional wait the provider asked for), or a permanent failure. The
//! dispatcher decides what to do with each outcome; a gateway never retries on
//! its own.

pub mod http;
pub mod kannel;
mod log;
pub mod twilio;

use std::time::Duration;

use async_trait::async_trait;
use avisa_core::{Channel, OutboxStatus, PhoneNumber};
use uuid::Uuid;

pub use crate::kannel::{KannelConfig, KannelGateway};
pub use crate::log::LogGateway;
pub use crate::twilio::{TwilioConfig, TwilioGateway};

/// One message to send.
#[derive(Debug, Clone)]
pub struct OutgoingSms {
    /// Our id for this message, given to providers as a reference, so a
    /// message sent twice after a crash is recognisable as one.
    pub id: Uuid,
    /// Always one of the gateway's [`Gateway::channels`].
    pub channel: Channel,
    pub to: PhoneNumber,
    pub body: String,
    /// What remains of the message's validity: a provider must not hold it
    /// longer (an alert SMS hours late does harm). None: the provider's own
    /// default.
    pub valid_for: Option<std::time::Duration>,
}

/// A provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message (for delivery receipts).
    pub provider_id: String,
}

/// Why a gateway did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Worth trying again (timeouts, 5xx, rate limits).
    #[error("temporary gateway failure: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again will not help (invalid number, rejected content, bad
    /// credentials).
    #[error("permanent gateway failure: {reason}")]
    Permanent { reason: String },
    /// Final for this recipient on every gateway: the number is invalid, or
    /// its owner unsubscribed from our messages (`opted_out`). Another
    /// gateway must not try it — that would bypass their STOP.
    #[error("the recipient refuses or cannot receive: {reason}")]
    Recipient { reason: String, opted_out: bool },
    /// The gateway's own fault, not the message's: our credentials, our
    /// account or the gateway's address (Twilio 401, 20003, 20404; Kannel
    /// 401, 403, 404). The gateway is taken out for a while and the message
    /// goes by another or waits; it is never failed for it.
    #[error("the gateway refused our account or credentials: {reason}")]
    Account { reason: String },
    /// The request was written and no answer came in time: the provider
    /// may have the message. Before it is sent again the same gateway is
    /// asked ([`Gateway::find`]), so a slow provider does not mean a
    /// second copy.
    #[error("no answer in time; the provider may have the message: {reason}")]
    InDoubt { reason: String },
}

/// A way to send SMS.
#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    /// The name used in configuration, metrics and logs ("log", "twilio").
    fn name(&self) -> &str;
    /// The channels it carries: the dispatcher gives it only messages of
    /// these, and fails a message over only to another gateway of the
    /// message's channel. Every gateway so far carries SMS alone.
    fn channels(&self) -> &'static [Channel] {
        &[Channel::Sms]
    }
    async fn send(&self, sms: &OutgoingSms) -> Result<Accepted, GatewayError>;
    /// After a send left in doubt: the provider's messages that could be
    /// this one (same recipient and text, taken since `since_ms`, Unix ms),
    /// newest first. The caller leaves out those it knows as other
    /// messages of its own; if one remains, the message is not sent again.
    /// Gateways that cannot tell answer none (the message is sent again).
    async fn find(
        &self,
        _sms: &OutgoingSms,
        _since_ms: i64,
    ) -> Result<Vec<Accepted>, GatewayError> {
        Ok(Vec::new())
    }
    /// After our account or credentials were refused: whether they are
    /// accepted again, asked with a cheap authenticated request that sends
    /// nothing. None where the gateway cannot be asked (it waits out its
    /// pause).
    async fn probe(&self) -> Option<bool> {
        None
    }
}

/// Blanks every run of six or more digits (a phone number, with or without
/// `+`, spaces or dashes inside) in a provider's error text. Such text
/// becomes a message's stored `reason` and a log line, and providers quote
/// the number they refused ("The 'To' number +1… is not valid").
pub fn redact_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if starts {
            // The run: digits, and single separators between digits.
            let mut j = i + 1;
            let mut digits = usize::from(chars[i].is_ascii_digit());
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                    j += 1;
                } else if matches!(chars[j], ' ' | '-' | '.' | '(' | ')')
                    && chars.get(j + 1).is_some_and(char::is_ascii_digit)
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if digits >= 6 {
                out.push('…');
            } else {
                out.extend(&chars[i..j]);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// What a delivery receipt says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Handed on by the provider (no news of the handset yet).
    Sent,
    /// On the recipient's phone.
    Delivered,
    /// Will not arrive.
    Failed,
}

impl Receipt {
    /// The outbox status it moves a message to, and the statuses it may
    /// move it from (receipts never move a message backwards).
    pub fn transition(self) -> (OutboxStatus, &'static [OutboxStatus]) {
        use OutboxStatus::{Delivered, Failed, Sending, Sent};
        match self {
            Receipt::Sent => (Sent, &[Sending]),
            Receipt::Delivered => (Delivered, &[Sending, Sent]),
            Receipt::Failed => (Failed, &[Sending, Sent]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_numbers;

    #[test]
    fn numbers_in_provider_errors_are_blanked() {
        assert_eq!(
            redact_numbers("The 'To' number +12135550100 is not a valid phone number."),
            "The 'To' number … is not a valid phone number."
        );
        assert_eq!(redact_numbers("to 213-555-0100 failed"), "to … failed");
        assert_eq!(redact_numbers("+52 55 1234 5678 refused"), "… refused");
        // Short codes and error numbers stay: they say what went wrong.
        assert_eq!(
            redact_numbers("error 21211, code 30003"),
            "error 21211, code 30003"
        );
        assert_eq!(
            redact_numbers("3: Queued for later delivery"),
            "3: Queued for later delivery"
        );
    }
}
