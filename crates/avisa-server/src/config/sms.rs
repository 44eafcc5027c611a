//! `[sms]`: the gateways in their order of preference, each with its
//! settings (`kind = "log" | "twilio" | "kannel"`), and how long a message
//! is worth sending.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// In order of preference: a message that fails on one moves to the next.
    pub gateways: Vec<Gateway>,
    pub log_echo: bool,
    pub service_number: String,
    /// Past this a message is expired instead of sent late.
    #[serde(with = "humantime_serde")]
    pub validity: Duration,
    /// A message a gateway took with no delivery receipt of any kind this
    /// long after is "sin confirmación"; an alert message is then sent once
    /// more by the next gateway.
    #[serde(with = "humantime_serde")]
    pub receipt_timeout: Duration,
    /// The answer to HELP or INFO sent to the service number through a
    /// gateway that does not answer them itself (Kannel): who runs Avisa
    /// and how to reach them. Empty: Avisa's own text in both languages.
    pub help_text: String,
}

/// An SMS gateway and its settings, by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Gateway {
    /// Writes each SMS to `<data_dir>/sms-log.jsonl` (and the terminal).
    Log(LogSettings),
    Twilio(TwilioSettings),
    Kannel(KannelSettings),
}

impl Gateway {
    pub fn kind(&self) -> &'static str {
        match self {
            Gateway::Log(_) => "log",
            Gateway::Twilio(_) => "twilio",
            Gateway::Kannel(_) => "kannel",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Messages per second; 0 for no limit.
    pub rate_per_second: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioSettings {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    pub from: String,
    pub messaging_service_sid: String,
    pub rate_per_second: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KannelSettings {
    pub sendsms_url: String,
    pub username: String,
    pub password: SecretString,
    pub from: String,
    pub inbound_token: SecretString,
    pub rate_per_second: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            gateways: vec![Gateway::Log(LogSettings::default())],
            log_echo: true,
            service_number: String::new(),
            validity: Duration::from_secs(60 * 60),
            receipt_timeout: Duration::from_secs(10 * 60),
            help_text: String::new(),
        }
    }
}

impl Default for TwilioSettings {
    fn default() -> Self {
        TwilioSettings {
            base_url: "https://api.twilio.com".into(),
            account_sid: String::new(),
            auth_token: SecretString::from(""),
            from: String::new(),
            messaging_service_sid: String::new(),
            rate_per_second: 0,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for KannelSettings {
    fn default() -> Self {
        KannelSettings {
            sendsms_url: "http://127.0.0.1:13013/cgi-bin/sendsms".into(),
            username: String::new(),
            password: SecretString::from(""),
            from: String::new(),
            inbound_token: SecretString::from(""),
            rate_per_second: 0,
            timeout: Duration::from_secs(10),
        }
    }
}

impl SmsConfig {
    /// The Twilio gateway's settings, if Twilio is a gateway (its token also
    /// checks Twilio's webhooks).
    pub fn twilio(&self) -> Option<&TwilioSettings> {
        self.gateways.iter().find_map(|g| match g {
            Gateway::Twilio(t) => Some(t),
            _ => None,
        })
    }

    /// The Kannel gateway's settings, if Kannel is a gateway.
    pub fn kannel(&self) -> Option<&KannelSettings> {
        self.gateways.iter().find_map(|g| match g {
            Gateway::Kannel(k) => Some(k),
            _ => None,
        })
    }
}
