//! Configuration: compiled defaults, then a TOML file, then `AVISA_*`
//! environment variables, then command-line flags (applied by the binary).
//!
//! Every key can be set from the environment by one rule: `AVISA_` and the
//! key's path in upper case, sections joined by `__`
//! (`AVISA_CONSOLE__ESCALATE_AFTER=2m`, `AVISA_DATABASE_URL=…`); a value is
//! read as TOML where it parses (numbers, booleans, `[…]`, `{…}`), as text
//! otherwise. The gateways' secrets also have short names
//! (`AVISA_TWILIO_AUTH_TOKEN`, `AVISA_KANNEL_PASSWORD`,
//! `AVISA_KANNEL_INBOUND_TOKEN`), so they need never sit in a file.
//! Durations are written as durations: `"30s"`, `"15m"`, `"12h"`.
//! [`Config::validate`] (in `check.rs`) turns every mistake into a sentence
//! a person can act on.

mod check;
mod limits;
mod sms;

pub use avisa_engine::config::{DispatchConfig, millis};
pub use avisa_engine::retention::Retention;
pub use limits::Limits;
pub use sms::{Gateway, KannelSettings, LogSettings, SmsConfig, TwilioSettings};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::Value;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use check::ConfigError;

/// The commented example, also committed as `config/avisa.example.toml`.
pub const EXAMPLE: &str = include_str!("../../../../config/avisa.example.toml");

/// The top-level keys, which the environment rule may set. (Other `AVISA_`
/// variables, such as `AVISA_LOG` for the log filter, are not configuration.)
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "database",
    "data_key",
    "data_key_file",
    "metrics_token",
    "directory",
    "public_url",
    "log_format",
    "sms",
    "limits",
    "alerts",
    "console",
    "dispatch",
    "retention",
];

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
    /// PostgreSQL's connection pool (`[database]`).
    pub database: DatabaseConfig,
    pub data_key: SecretString,
    /// The master key's file (see [`Config::data_key_file`]).
    pub data_key_file: PathBuf,
    /// The bearer token a remote Prometheus sends for `/metrics`; empty:
    /// `/metrics` answers only a scraper on this machine.
    pub metrics_token: SecretString,
    pub directory: PathBuf,
    pub public_url: String,
    pub log_format: LogFormat,
    pub sms: SmsConfig,
    pub limits: Limits,
    pub alerts: AlertsConfig,
    pub console: ConsoleConfig,
    pub dispatch: DispatchConfig,
    pub retention: Retention,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Alerts one person may raise per window that message their contacts,
    /// cancelled ones included (practice has a limit of its own, refused
    /// with 429). A real press past it is raised all the same: the
    /// consulate gets it, the person's phone is told, contacts already
    /// messaged within the window are not messaged again.
    pub rate_limit: u32,
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    /// Wrong PINs in a row before the PIN is locked, and for how long.
    pub pin_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub pin_lockout: Duration,
    /// At most one SMS per this long tells the person their contacts or
    /// keyword changed (the changes of a window are told at its end).
    #[serde(with = "humantime_serde")]
    pub changes_notice_every: Duration,
    /// A location trail takes at most one point per this long, and at most
    /// `trail_max` points per alert.
    #[serde(with = "humantime_serde")]
    pub trail_every: Duration,
    pub trail_max: u32,
    /// The phone shares its location for at most this long after a press
    /// (a hard stop: later points are refused with 409 `sharing_ended`).
    #[serde(with = "humantime_serde")]
    pub live_location_for: Duration,
    /// Contacts who chose location updates get a "nueva ubicación" SMS at
    /// most once per this long, and at most `location_updates_max` per alert.
    #[serde(with = "humantime_serde")]
    pub location_update_every: Duration,
    pub location_updates_max: u32,
    /// A check-in timer's reminder SMS goes this long before its deadline.
    #[serde(with = "humantime_serde")]
    pub checkin_reminder: Duration,
    pub duty_phones: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    /// When `public_url` is https.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// Failed logins from one client address before each next try waits
    /// (1 s, then doubling up to `login_max_delay`). Accounts are never
    /// locked: an attack from one address must not keep staff out.
    pub login_free_failures: u32,
    #[serde(with = "humantime_serde")]
    pub login_max_delay: Duration,
    /// An address's count starts again after this long without a failure.
    #[serde(with = "humantime_serde")]
    pub login_forget: Duration,
    #[serde(with = "humantime_serde")]
    pub escalate_after: Duration,
    /// Still unacknowledged this long after the alert, it escalates again:
    /// the duty phones are told a second time.
    #[serde(with = "humantime_serde")]
    pub escalate_again_after: Duration,
    pub tile_url: String,
    pub secure_cookie: SecureCookie,
    /// How often the console sounds again while an alert waits
    /// unacknowledged.
    #[serde(with = "humantime_serde")]
    pub alarm_every: Duration,
    /// The next steps a case shows, by case state (`new`, `acknowledged`,
    /// `resolved`), as the consulate writes them.
    pub checklist: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Connections this instance holds at most (PostgreSQL): with N
    /// instances, N × this must stay below the server's max_connections.
    pub max_connections: u32,
    /// How long a request waits for a connection; past it a press gets 503
    /// with Retry-After (the database is away or overloaded).
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(2),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./avisa-data"),
            database_url: SecretString::from(""),
            database: DatabaseConfig::default(),
            data_key: SecretString::from(""),
            data_key_file: PathBuf::new(),
            metrics_token: SecretString::from(""),
            directory: PathBuf::new(),
            public_url: "http://127.0.0.1:8080".into(),
            log_format: LogFormat::Text,
            sms: SmsConfig::default(),
            limits: Limits::default(),
            alerts: AlertsConfig::default(),
            console: ConsoleConfig::default(),
            dispatch: DispatchConfig::default(),
            retention: Retention::default(),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            rate_limit: 5,
            rate_window: Duration::from_secs(10 * 60),
            pin_max_failures: 5,
            pin_lockout: Duration::from_secs(15 * 60),
            changes_notice_every: Duration::from_secs(10 * 60),
            trail_every: Duration::from_secs(10),
            // Four hours of one point per 10 s: the whole live sharing.
            trail_max: 1440,
            live_location_for: Duration::from_secs(4 * 3600),
            location_update_every: Duration::from_secs(15 * 60),
            location_updates_max: 3,
            checkin_reminder: Duration::from_secs(15 * 60),
            duty_phones: Default::default(),
        }
    }
}

/// What a case asks of the officer until the consulate writes its own.
fn default_checklist() -> std::collections::BTreeMap<String, Vec<String>> {
    let steps = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    [
        (
            "new",
            steps(&[
                "Tomar el caso: la persona ve que el consulado lo recibió",
                "Si NO hay PIN de coacción: llamar a la persona",
                "Llamar a los contactos que recibieron el mensaje",
            ]),
        ),
        (
            "acknowledged",
            steps(&[
                "Buscar a la persona en el localizador de detenidos de ICE (locator.ice.gov)",
                "Llamar al centro de detención más cercano",
                "Anotar cada llamada en el registro del caso",
                "Avisar a protección consular si está detenida",
            ]),
        ),
        (
            "resolved",
            steps(&["Confirmar a los contactos el resultado"]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            login_free_failures: 5,
            login_max_delay: Duration::from_secs(15 * 60),
            login_forget: Duration::from_secs(3600),
            escalate_after: Duration::from_secs(5 * 60),
            escalate_again_after: Duration::from_secs(15 * 60),
            tile_url: String::new(),
            secure_cookie: SecureCookie::Auto,
            alarm_every: Duration::from_secs(10),
            checklist: default_checklist(),
        }
    }
}

impl ConsoleConfig {
    /// Whether the session cookie is marked Secure.
    pub fn secure(&self, public_url: &str) -> bool {
        match self.secure_cookie {
            SecureCookie::Always => true,
            SecureCookie::Never => false,
            SecureCookie::Auto => public_url.starts_with("https://"),
        }
    }
}

/// An environment variable's value: TOML where it parses, text otherwise. A
/// leading `+` is a phone number's, not a sign: it stays text.
fn env_value(raw: &str) -> Value {
    if raw.starts_with('+') {
        return Value::from(raw.to_string());
    }
    raw.parse().unwrap_or_else(|e| match e {})
}

impl Config {
    /// What raising an alert reads of this configuration.
    pub fn alert_rules(&self) -> avisa_engine::alerting::AlertRules {
        avisa_engine::alerting::AlertRules {
            rate_limit: self.alerts.rate_limit,
            rate_window: self.alerts.rate_window,
            validity: self.sms.validity,
            public_url: self.public_url.clone(),
            duty_phones: self.alerts.duty_phones.clone(),
            price_units: self.limits.price_units.clone(),
            price_units_default: self.limits.price_units_default,
            person_sms_per_hour: self.limits.person_sms_per_hour,
            person_sms_per_day: self.limits.person_sms_per_day,
        }
    }

    /// Defaults, then the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigError::one(format!(
                    "cannot read the config file {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        Config::layered(text.as_deref(), std::env::vars()).map_err(|e| match file {
            Some(path) => e.context(&format!("config file {}", path.display())),
            None => e,
        })
    }

    /// The file's text alone over the defaults (tests, the example).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::layered(Some(text), std::iter::empty())
    }

    /// Defaults, then `text` as TOML, then the `AVISA_*` variables among
    /// `vars` whose name names a key (see the module's documentation).
    pub fn layered(
        text: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(text) = text {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| ConfigError::one(e.to_string()))?;
            figment = figment.merge(Serialized::defaults(table));
        }
        let mut secrets = Vec::new();
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("AVISA_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if KEYS
                .iter()
                .any(|k| key == *k || key.starts_with(&format!("{k}__")))
            {
                figment = figment.merge(Serialized::default(
                    &key.replace("__", "."),
                    env_value(&value),
                ));
            } else {
                secrets.push((key, value));
            }
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError(e.into_iter().map(|e| e.to_string()).collect()))?;
        config.apply_secret_aliases(|name| {
            secrets
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        });
        Ok(config)
    }

    /// The short names of the gateways' secrets (`AVISA_TWILIO_AUTH_TOKEN`…,
    /// given here without the prefix), applied to the gateway of that kind.
    fn apply_secret_aliases(&mut self, get: impl Fn(&str) -> Option<String>) {
        for gateway in &mut self.sms.gateways {
            match gateway {
                Gateway::Twilio(t) => {
                    if let Some(v) = get("TWILIO_AUTH_TOKEN") {
                        t.auth_token = SecretString::from(v);
                    }
                }
                Gateway::Kannel(k) => {
                    if let Some(v) = get("KANNEL_PASSWORD") {
                        k.password = SecretString::from(v);
                    }
                    if let Some(v) = get("KANNEL_INBOUND_TOKEN") {
                        k.inbound_token = SecretString::from(v);
                    }
                }
                Gateway::Log(_) => {}
            }
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

    /// The master key's file when `data_key` is empty: `data_key_file`; else
    /// an older Avisa's `<data_dir>/data.key`; else, apart from the data (a
    /// copy of the directory carries no key), `$XDG_CONFIG_HOME/avisa/data.key`.
    pub fn data_key_file(&self) -> PathBuf {
        if !self.data_key_file.as_os_str().is_empty() {
            return self.data_key_file.clone();
        }
        let beside = self.data_dir.join("data.key");
        if beside.exists() {
            return beside;
        }
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        match config_home {
            Some(dir) => dir.join("avisa").join("data.key"),
            None => beside,
        }
    }

    /// Whether the key file is the data directory's (a copy of the
    /// directory then carries its key).
    pub fn key_beside_data(&self) -> bool {
        self.data_key_file().parent() == Some(self.data_dir.as_path())
    }

    pub fn sms_log_file(&self) -> PathBuf {
        self.data_dir.join("sms-log.jsonl")
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
    fn layers_apply_in_order_and_every_key_has_an_environment_name() {
        let c = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\n[limits]\nmax_body_bytes = 4096\n\
             [console]\nescalate_after = \"2m\"\n",
        )
        .expect("parse");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.limits.max_body_bytes, 4096);
        assert_eq!(c.console.escalate_after, Duration::from_secs(120));
        assert_eq!(
            c.limits.registrations_per_hour, 3,
            "unset keys keep defaults"
        );
        let vars = [
            ("AVISA_LISTEN", "127.0.0.1:9100"),
            ("AVISA_DATABASE_URL", "postgres://db/avisa"),
            ("AVISA_DISPATCH__POLL", "100ms"),
            (
                "AVISA_SMS__GATEWAYS",
                "[{kind = \"twilio\", account_sid = \"AC1\", from = \"+15005550006\"}, {kind = \"log\"}]",
            ),
            ("AVISA_TWILIO_AUTH_TOKEN", "secret-token"),
            ("AVISA_SMS__SERVICE_NUMBER", "+15005550006"),
            (
                "AVISA_DATA_KEY",
                "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI=",
            ),
            ("AVISA_LOG", "debug"),
            // As the package's unit sets it.
            ("AVISA_SMS__LOG_ECHO", "false"),
        ];
        let c = Config::layered(
            Some("listen = \"0.0.0.0:9000\"\n"),
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("env");
        assert_eq!(c.listen.port(), 9100, "the environment wins over the file");
        assert_eq!(c.database_url(), "postgres://db/avisa");
        assert_eq!(c.dispatch.poll, Duration::from_millis(100));
        assert_eq!(c.sms.service_number, "+15005550006", "numbers stay text");
        assert!(
            !c.sms.log_echo,
            "the unit's AVISA_SMS__LOG_ECHO=false holds"
        );
        assert_eq!(
            c.data_key.expose_secret(),
            "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI="
        );
        assert_eq!(
            c.sms.gateways.iter().map(Gateway::kind).collect::<Vec<_>>(),
            ["twilio", "log"]
        );
        assert_eq!(
            c.sms.twilio().expect("twilio").auth_token.expose_secret(),
            "secret-token"
        );
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(Config::from_toml("listen = 5").is_err());
        let err = Config::from_toml("lissen = \"x\"").expect_err("unknown key");
        assert!(err.to_string().contains("lissen"), "{err}");
        let err = Config::from_toml("[[sms.gateways]]\nkind = \"pigeon\"\n")
            .expect_err("unknown gateway");
        assert!(err.to_string().contains("pigeon"), "{err}");
        let err = Config::from_toml("[console]\nescalate_after = \"soon\"\n")
            .expect_err("not a duration");
        assert!(err.to_string().contains("escalate_after"), "{err}");
        let mut c = Config {
            data_key: SecretString::from("not-a-key"),
            public_url: "ftp://x".into(),
            ..Config::default()
        };
        c.sms.gateways = vec![Gateway::Twilio(TwilioSettings::default())];
        let msg = c.validate().expect_err("invalid").to_string();
        for part in ["data_key", "public_url", "account_sid", "auth_token"] {
            assert!(msg.contains(part), "{msg}");
        }
    }

    #[test]
    fn the_environment_rule_knows_every_top_level_key() {
        // The example has every key: its top level is what AVISA_* may set.
        let table: toml::Table = toml::from_str(EXAMPLE).expect("the example parses");
        let mut in_example: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut known = KEYS.to_vec();
        in_example.sort_unstable();
        known.sort_unstable();
        assert_eq!(in_example, known);
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
