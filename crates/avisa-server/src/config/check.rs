//! What can be checked of a configuration without I/O, every mistake at
//! once, each as a sentence a person can act on.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::{Config, Gateway};

/// A configuration that cannot be used, with every reason found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    pub(crate) fn one(reason: String) -> ConfigError {
        ConfigError(vec![reason])
    }

    /// Says where each reason comes from.
    pub(crate) fn context(self, place: &str) -> ConfigError {
        ConfigError(
            self.0
                .into_iter()
                .map(|r| format!("{place}: {r}"))
                .collect(),
        )
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl Config {
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
        if !is_http(&self.public_url) {
            errors.push(format!(
                "public_url {:?} must start with http:// or https://",
                self.public_url
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.limits.max_body_bytes) {
            errors.push("limits.max_body_bytes must be between 1024 and 1048576".into());
        }
        for code in &self.limits.code_countries {
            if avisa_core::Country::parse("code_countries", code).is_err() {
                errors.push(format!(
                    "limits.code_countries: {code:?} is not a country code such as US or MX"
                ));
            }
        }
        if self.limits.max_connections == 0 || self.limits.connections_per_address == 0 {
            errors.push(
                "limits.max_connections and limits.connections_per_address must be at least 1"
                    .into(),
            );
        }
        if self.limits.header_timeout.is_zero() || self.limits.body_timeout.is_zero() {
            errors.push("limits.header_timeout and limits.body_timeout must be above 0".into());
        }
        if self.limits.registrations_per_hour == 0 {
            errors.push("limits.registrations_per_hour must be at least 1".into());
        }
        self.check_gateways(&mut errors);
        if !self.sms.service_number.trim().is_empty()
            && avisa_core::PhoneNumber::parse(&self.sms.service_number).is_err()
        {
            errors.push(format!(
                "sms.service_number {:?} is not a phone number",
                self.sms.service_number
            ));
        }
        let minute = Duration::from_secs(60);
        if !(minute..=24 * 60 * minute).contains(&self.sms.validity) {
            errors.push("sms.validity must be between 1m and 24h".into());
        }
        if self.sms.receipt_timeout < Duration::from_secs(1) {
            errors.push("sms.receipt_timeout must be at least 1s".into());
        }
        for (office, phone) in &self.alerts.duty_phones {
            if avisa_core::PhoneNumber::parse(phone).is_err() {
                errors.push(format!(
                    "alerts.duty_phones.{office}: {phone:?} is not a phone number"
                ));
            }
        }
        let a = &self.alerts;
        if a.rate_limit == 0 || a.rate_window.is_zero() {
            errors
                .push("alerts.rate_limit and alerts.rate_window must be at least 1 and 1s".into());
        }
        if a.pin_max_failures == 0 || a.pin_lockout.is_zero() {
            errors.push("alerts.pin_max_failures and alerts.pin_lockout must be positive".into());
        }
        let c = &self.console;
        if c.session_idle.is_zero()
            || c.session_max.is_zero()
            || c.login_max_delay.is_zero()
            || c.login_forget.is_zero()
            || c.escalate_after.is_zero()
        {
            errors.push("console: session_idle, session_max, login_max_delay, login_forget and escalate_after must be positive".into());
        }
        if c.alarm_every < std::time::Duration::from_secs(2) {
            errors.push("console.alarm_every must be at least 2s".into());
        }
        if let Some(k) = c
            .checklist
            .keys()
            .find(|k| !matches!(k.as_str(), "new" | "acknowledged" | "resolved"))
        {
            errors.push(format!(
                "console.checklist: `{k}` is not a case state (new, acknowledged, resolved)"
            ));
        }
        if !c.tile_url.is_empty() && !is_http(&c.tile_url) {
            errors.push("console.tile_url must be an http(s) URL with {z}, {x} and {y}".into());
        }
        if self.limits.press_deadline < Duration::from_millis(100) {
            errors.push("limits.press_deadline must be at least 100ms".into());
        }
        let d = &self.dispatch;
        if !(1..=1000).contains(&d.batch) {
            errors.push("dispatch.batch must be between 1 and 1000".into());
        }
        if d.lease < Duration::from_secs(1)
            || d.poll.is_zero()
            || d.retry_base.is_zero()
            || d.retry_max < d.retry_base
        {
            errors.push("dispatch: lease must be at least 1s, poll and retry_base positive, retry_max >= retry_base".into());
        }
        if d.takeover < Duration::from_millis(400) {
            errors.push("dispatch.takeover must be at least 400ms".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    fn check_gateways(&self, errors: &mut Vec<String>) {
        if self.sms.gateways.is_empty() {
            errors.push(
                "sms.gateways must list at least one gateway, e.g. [[sms.gateways]] kind = \"log\""
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for g in &self.sms.gateways {
            if !seen.insert(g.kind()) {
                errors.push(format!("sms.gateways lists {:?} twice", g.kind()));
            }
            match g {
                Gateway::Log(_) => {}
                Gateway::Twilio(t) => {
                    if t.account_sid.trim().is_empty() {
                        errors.push("the twilio gateway needs account_sid".into());
                    }
                    if t.auth_token.expose_secret().trim().is_empty() {
                        errors.push(
                            "the twilio gateway needs auth_token (AVISA_TWILIO_AUTH_TOKEN)".into(),
                        );
                    }
                    if t.from.trim().is_empty() && t.messaging_service_sid.trim().is_empty() {
                        errors.push(
                            "the twilio gateway needs `from` (a number) or `messaging_service_sid`"
                                .into(),
                        );
                    }
                    if !is_http(&t.base_url) {
                        errors.push("the twilio gateway's base_url must be http(s)".into());
                    }
                }
                Gateway::Kannel(k) => {
                    if !is_http(&k.sendsms_url) {
                        errors.push("the kannel gateway's sendsms_url must be http(s)".into());
                    }
                    if k.username.trim().is_empty() {
                        errors.push("the kannel gateway needs username".into());
                    }
                }
            }
        }
    }
}
