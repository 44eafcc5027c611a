//! Configuration: compiled defaults, then a TOML file, then `AVISA_*`
//! environment variables, then command-line flags (applied by the binary).
//! [`Config::validate`] turns every mistake into a sentence a person can act on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The commented example, also committed as `config/avisa.example.toml`.
pub const EXAMPLE: &str = include_str!("../../../config/avisa.example.toml");

/// Gateways this build knows.
pub const KNOWN_GATEWAYS: &[&str] = &["twilio", "kannel", "log"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    pub data_key: SecretString,
    pub directory: PathBuf,
    pub public_url: String,
    pub log_format: LogFormat,
    pub sms: SmsConfig,
    pub limits: Limits,
    pub alerts: AlertsConfig,
    pub console: ConsoleConfig,
    pub dispatch: DispatchConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub session_idle_minutes: u64,
    pub session_max_hours: u64,
    pub lockout_failures: u32,
    pub lockout_minutes: u64,
    pub escalate_after_seconds: u64,
    pub tile_url: String,
    pub secure_cookie: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            lockout_failures: 5,
            lockout_minutes: 15,
            escalate_after_seconds: 300,
            tile_url: String::new(),
            secure_cookie: "auto".into(),
        }
    }
}

impl ConsoleConfig {
    /// Whether the session cookie is marked Secure.
    pub fn secure(&self, public_url: &str) -> bool {
        match self.secure_cookie.as_str() {
            "always" => true,
            "never" => false,
            _ => public_url.starts_with("https://"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub gateways: Vec<String>,
    pub log_echo: bool,
    pub service_number: String,
    pub validity_minutes: u64,
    pub twilio: TwilioSettings,
    pub kannel: KannelSettings,
    pub log: LogSettings,
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
    pub timeout_seconds: u64,
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
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub rate_per_second: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub rate_limit: u32,
    pub rate_window_minutes: u64,
    pub pin_max_failures: u32,
    pub pin_lockout_minutes: u64,
    pub duty_phones: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    pub batch: u32,
    pub lease_seconds: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub poll_ms: u64,
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
            timeout_seconds: 10,
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
            timeout_seconds: 10,
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            rate_limit: 5,
            rate_window_minutes: 10,
            pin_max_failures: 5,
            pin_lockout_minutes: 15,
            duty_phones: Default::default(),
        }
    }
}

impl DispatchConfig {
    /// How long a message being sent stays leased, in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        (self.lease_seconds * 1000) as i64
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            batch: 512,
            lease_seconds: 30,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            poll_ms: 250,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub registrations_per_hour: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./avisa-data"),
            database_url: SecretString::from(""),
            data_key: SecretString::from(""),
            directory: PathBuf::new(),
            public_url: "http://127.0.0.1:8080".into(),
            log_format: LogFormat::Text,
            sms: SmsConfig::default(),
            limits: Limits::default(),
            alerts: AlertsConfig::default(),
            console: ConsoleConfig::default(),
            dispatch: DispatchConfig::default(),
        }
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            gateways: vec!["log".into()],
            log_echo: true,
            service_number: String::new(),
            validity_minutes: 60,
            twilio: TwilioSettings::default(),
            kannel: KannelSettings::default(),
            log: LogSettings::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024,
            registrations_per_hour: 5,
        }
    }
}

/// A configuration that cannot be used, with every reason found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(vec![format!(
                        "cannot read the config file {}: {e}",
                        path.display()
                    )])
                })?;
                Config::from_toml(&text).map_err(|e| {
                    ConfigError(vec![format!("config file {}: {e}", path.display())])
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `AVISA_*` variables read through `get` (a parameter so tests
    /// need not touch the process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        if let Some(v) = get("AVISA_LISTEN") {
            match v.parse() {
                Ok(addr) => self.listen = addr,
                Err(_) => errors.push(format!(
                    "AVISA_LISTEN={v:?} is not an address and port like 127.0.0.1:8080"
                )),
            }
        }
        if let Some(v) = get("AVISA_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("AVISA_DATABASE_URL") {
            self.database_url = SecretString::from(v);
        }
        if let Some(v) = get("AVISA_DATA_KEY") {
            self.data_key = SecretString::from(v);
        }
        if let Some(v) = get("AVISA_DIRECTORY") {
            self.directory = PathBuf::from(v);
        }
        if let Some(v) = get("AVISA_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = get("AVISA_LOG_FORMAT") {
            match v.as_str() {
                "text" => self.log_format = LogFormat::Text,
                "json" => self.log_format = LogFormat::Json,
                _ => errors.push(format!(
                    "AVISA_LOG_FORMAT={v:?} must be \"text\" or \"json\""
                )),
            }
        }
        if let Some(v) = get("AVISA_SMS_GATEWAYS") {
            self.sms.gateways = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = get("AVISA_SERVICE_NUMBER") {
            self.sms.service_number = v;
        }
        if let Some(v) = get("AVISA_TWILIO_AUTH_TOKEN") {
            self.sms.twilio.auth_token = SecretString::from(v);
        }
        if let Some(v) = get("AVISA_KANNEL_PASSWORD") {
            self.sms.kannel.password = SecretString::from(v);
        }
        if let Some(v) = get("AVISA_KANNEL_INBOUND_TOKEN") {
            self.sms.kannel.inbound_token = SecretString::from(v);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The database URL in effect: the configured one, or SQLite in the data
    /// directory.
    pub fn database_url(&self) -> String {
        let url = self.database_url.expose_secret().trim();
        if url.is_empty() {
            format!("sqlite:{}", self.data_dir.join("avisa.db").display())
        } else {
            url.to_string()
        }
    }

    /// The replacement directory file, if one is configured.
    pub fn directory_file(&self) -> Option<&Path> {
        Some(self.directory.as_path()).filter(|p| !p.as_os_str().is_empty())
    }

    pub fn data_key_file(&self) -> PathBuf {
        self.data_dir.join("data.key")
    }

    pub fn sms_log_file(&self) -> PathBuf {
        self.data_dir.join("sms-log.jsonl")
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            errors.push(
                "database_url must start with sqlite: or postgres:// (or be empty for SQLite in the data directory)"
                    .to_string(),
            );
        }
        if self.data_dir.as_os_str().is_empty() {
            errors.push("data_dir must not be empty".into());
        }
        let key = self.data_key.expose_secret().trim();
        if !key.is_empty() && avisa_core::crypto::DataKey::from_base64(key).is_err() {
            errors.push(
                "data_key (AVISA_DATA_KEY) must be 32 bytes in base64, e.g. the output of `openssl rand -base64 32`"
                    .into(),
            );
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            errors.push(format!(
                "public_url {:?} must start with http:// or https://",
                self.public_url
            ));
        }
        if self.sms.gateways.is_empty() {
            errors.push("sms.gateways must name at least one gateway, e.g. [\"log\"]".into());
        }
        for g in &self.sms.gateways {
            if !KNOWN_GATEWAYS.contains(&g.as_str()) {
                errors.push(format!(
                    "sms.gateways: unknown gateway {g:?}; known: {}",
                    KNOWN_GATEWAYS.join(", ")
                ));
            }
        }
        if !(1024..=1024 * 1024).contains(&self.limits.max_body_bytes) {
            errors.push("limits.max_body_bytes must be between 1024 and 1048576".into());
        }
        if self.limits.registrations_per_hour == 0 {
            errors.push("limits.registrations_per_hour must be at least 1".into());
        }
        let uses = |g: &str| self.sms.gateways.iter().any(|x| x == g);
        let mut seen = std::collections::HashSet::new();
        for g in &self.sms.gateways {
            if !seen.insert(g) {
                errors.push(format!("sms.gateways lists {g:?} twice"));
            }
        }
        if uses("twilio") {
            let t = &self.sms.twilio;
            if t.account_sid.trim().is_empty() {
                errors.push("sms.twilio.account_sid is required when twilio is a gateway".into());
            }
            if t.auth_token.expose_secret().trim().is_empty() {
                errors.push("sms.twilio.auth_token (AVISA_TWILIO_AUTH_TOKEN) is required when twilio is a gateway".into());
            }
            if t.from.trim().is_empty() && t.messaging_service_sid.trim().is_empty() {
                errors.push("sms.twilio needs `from` (a number) or `messaging_service_sid`".into());
            }
            if !(t.base_url.starts_with("http://") || t.base_url.starts_with("https://")) {
                errors.push("sms.twilio.base_url must start with http:// or https://".into());
            }
        }
        if uses("kannel") {
            let k = &self.sms.kannel;
            if !(k.sendsms_url.starts_with("http://") || k.sendsms_url.starts_with("https://")) {
                errors.push("sms.kannel.sendsms_url must start with http:// or https://".into());
            }
            if k.username.trim().is_empty() {
                errors.push("sms.kannel.username is required when kannel is a gateway".into());
            }
        }
        if !self.sms.service_number.trim().is_empty()
            && avisa_core::PhoneNumber::parse(&self.sms.service_number).is_err()
        {
            errors.push(format!(
                "sms.service_number {:?} is not a phone number",
                self.sms.service_number
            ));
        }
        if !(1..=24 * 60).contains(&self.sms.validity_minutes) {
            errors.push("sms.validity_minutes must be between 1 and 1440".into());
        }
        for (office, phone) in &self.alerts.duty_phones {
            if avisa_core::PhoneNumber::parse(phone).is_err() {
                errors.push(format!(
                    "alerts.duty_phones.{office}: {phone:?} is not a phone number"
                ));
            }
        }
        if self.alerts.rate_limit == 0 || self.alerts.rate_window_minutes == 0 {
            errors
                .push("alerts.rate_limit and alerts.rate_window_minutes must be at least 1".into());
        }
        if self.alerts.pin_max_failures == 0 {
            errors.push("alerts.pin_max_failures must be at least 1".into());
        }
        let c = &self.console;
        if c.session_idle_minutes == 0
            || c.session_max_hours == 0
            || c.lockout_failures == 0
            || c.escalate_after_seconds == 0
        {
            errors.push("console: session_idle_minutes, session_max_hours, lockout_failures and escalate_after_seconds must be at least 1".into());
        }
        if !matches!(c.secure_cookie.as_str(), "auto" | "always" | "never") {
            errors.push(format!(
                "console.secure_cookie {:?} must be \"auto\", \"always\" or \"never\"",
                c.secure_cookie
            ));
        }
        if !c.tile_url.is_empty()
            && !c.tile_url.starts_with("https://")
            && !c.tile_url.starts_with("http://")
        {
            errors.push("console.tile_url must be an http(s) URL with {z}, {x} and {y}".into());
        }
        let d = &self.dispatch;
        if !(1..=1000).contains(&d.batch) {
            errors.push("dispatch.batch must be between 1 and 1000".into());
        }
        if d.lease_seconds == 0
            || d.poll_ms == 0
            || d.retry_base_ms == 0
            || d.retry_max_ms < d.retry_base_ms
        {
            errors.push("dispatch: lease_seconds, poll_ms and retry_base_ms must be positive, retry_max_ms >= retry_base_ms".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_is_the_defaults() {
        let from_example = Config::from_toml(EXAMPLE).expect("the example parses");
        let defaults = Config::default();
        assert_eq!(format!("{from_example:?}"), format!("{defaults:?}"));
        assert!(defaults.validate().is_ok());
        assert_eq!(defaults.database_url(), "sqlite:./avisa-data/avisa.db");
    }

    #[test]
    fn layers_apply_in_order() {
        let mut c =
            Config::from_toml("listen = \"0.0.0.0:9000\"\n[limits]\nmax_body_bytes = 4096\n")
                .expect("parse");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.max_body_bytes, 4096);
        assert_eq!(
            c.limits.registrations_per_hour, 5,
            "unset keys keep defaults"
        );
        c.apply_env(|k| match k {
            "AVISA_LISTEN" => Some("127.0.0.1:9100".into()),
            "AVISA_DATABASE_URL" => Some("postgres://db/avisa".into()),
            _ => None,
        })
        .expect("env");
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.database_url(), "postgres://db/avisa");
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(Config::from_toml("listen = 5").is_err());
        let err = Config::from_toml("lissen = \"x\"").expect_err("unknown key");
        assert!(err.contains("lissen"), "{err}");
        let mut c = Config::default();
        let env = c.apply_env(|k| (k == "AVISA_LISTEN").then(|| "nowhere".into()));
        assert!(env.expect_err("bad").to_string().contains("AVISA_LISTEN"));
        c.data_key = SecretString::from("not-a-key");
        c.public_url = "ftp://x".into();
        c.sms.gateways = vec!["carrier-pigeon".into()];
        let msg = c.validate().expect_err("invalid").to_string();
        for part in ["data_key", "public_url", "carrier-pigeon"] {
            assert!(msg.contains(part), "{msg}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = Config {
            data_key: SecretString::from("c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI="),
            database_url: SecretString::from("postgres://avisa:hunter2@db/avisa"),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
    }
}
