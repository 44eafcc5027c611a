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
use avisa_core::PhoneNumber;
use uuid::Uuid;

pub use crate::kannel::{KannelConfig, KannelGateway};
pub use crate::log::LogGateway;
pub use crate::twilio::{TwilioConfig, TwilioGateway};

/// One SMS to send.
#[derive(Debug, Clone)]
pub struct OutgoingSms {
    /// Our id for this message, given to providers as a reference, so a
    /// message sent twice after a crash is recognisable as one.
    pub id: Uuid,
    pub to: PhoneNumber,
    pub body: String,
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
}

/// A way to send SMS.
#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    /// The name used in configuration, metrics and logs ("log", "twilio").
    fn name(&self) -> &str;
    async fn send(&self, sms: &OutgoingSms) -> Result<Accepted, GatewayError>;
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
    pub fn transition(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Receipt::Sent => ("sent", &["sending"]),
            Receipt::Delivered => ("delivered", &["sending", "sent"]),
            Receipt::Failed => ("failed", &["sending", "sent"]),
        }
    }
}
