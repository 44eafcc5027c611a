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
pub const KNOWN_GATEWAYS: &[&str] = &["log"];

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub gateways: Vec<String>,
    pub log_echo: bool,
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
        }
    }
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            gateways: vec!["log".into()],
            log_echo: true,
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
