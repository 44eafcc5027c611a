//! Kannel's sendsms HTTP interface (smsbox), for operators with their own
//! SMSC or SMPP link.
//!
//! `GET {sendsms_url}?username&password&to&from&text&dlr-mask=31&dlr-url=…`;
//! text that GSM-7 cannot carry goes as UCS-2 (`coding=2`, `charset=UTF-8`).
//! Kannel returns no message id, so the id is ours: the DLR URL carries it
//! (with a signature the server checks) and Kannel substitutes `%d`, the
//! DLR type: 1 delivered, 2 failed, 4 buffered, 8 submitted, 16 rejected.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use avisa_core::sms::{Encoding, analyze};

use crate::http::{client, retry_after, transport_error};
use crate::{Accepted, Gateway, GatewayError, OutgoingSms, Receipt};

/// Makes the DLR URL for a message id (it must contain `%d`).
pub type DlrUrl = Arc<dyn Fn(Uuid) -> String + Send + Sync>;

#[derive(Clone)]
pub struct KannelConfig {
    /// e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`
    pub sendsms_url: String,
    pub username: String,
    pub password: SecretString,
    /// The sender number or short code, if the SMSC needs one.
    pub from: Option<String>,
    pub timeout: Duration,
}

pub struct KannelGateway {
    config: KannelConfig,
    http: reqwest::Client,
    dlr_url: Option<DlrUrl>,
}

impl KannelGateway {
    pub fn new(config: KannelConfig, dlr_url: Option<DlrUrl>) -> Result<Self, reqwest::Error> {
        Ok(KannelGateway {
            http: client(config.timeout)?,
            config,
            dlr_url,
        })
    }
}

#[async_trait]
impl Gateway for KannelGateway {
    fn name(&self) -> &str {
        "kannel"
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<Accepted, GatewayError> {
        let mut query: Vec<(&str, String)> = vec![
            ("username", self.config.username.clone()),
            ("password", self.config.password.expose_secret().to_string()),
            ("to", sms.to.to_string()),
            ("text", sms.body.clone()),
            ("charset", "UTF-8".into()),
        ];
        if analyze(&sms.body).encoding == Encoding::Ucs2 {
            query.push(("coding", "2".into()));
        }
        if let Some(from) = &self.config.from {
            query.push(("from", from.clone()));
        }
        if let Some(valid) = sms.valid_for {
            // Kannel's `validity` is in minutes: what remains, rounded down
            // (a message must not outlive its validity), at least one.
            query.push(("validity", (valid.as_secs() / 60).max(1).to_string()));
        }
        if let Some(dlr) = &self.dlr_url {
            query.push(("dlr-mask", "31".into()));
            query.push(("dlr-url", dlr(sms.id)));
        }
        let response = self
            .http
            .get(&self.config.sendsms_url)
            .query(&query)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(120)
            .collect();
        let reason = format!(
            "kannel {}: {}",
            status.as_u16(),
            crate::redact_numbers(text.trim())
        );
        match status.as_u16() {
            200..=299 => Ok(Accepted {
                provider_id: sms.id.to_string(),
            }),
            429 | 500..=599 => Err(GatewayError::Retryable {
                reason,
                retry_after: wait,
            }),
            // sendsms's "Authorization failed", or a wrong address: ours.
            401 | 403 | 404 => Err(GatewayError::Account { reason }),
            _ => Err(GatewayError::Permanent { reason }),
        }
    }
}

/// What a Kannel DLR type means for a message.
pub fn dlr_status(code: u32) -> Option<Receipt> {
    match code {
        1 => Some(Receipt::Delivered),
        2 | 16 => Some(Receipt::Failed),
        4 | 8 => Some(Receipt::Sent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlr_codes() {
        assert_eq!(dlr_status(1), Some(Receipt::Delivered));
        assert_eq!(dlr_status(2), Some(Receipt::Failed));
        assert_eq!(dlr_status(4), Some(Receipt::Sent));
        assert_eq!(dlr_status(8), Some(Receipt::Sent));
        assert_eq!(dlr_status(16), Some(Receipt::Failed));
        assert_eq!(dlr_status(3), None);
    }
}
