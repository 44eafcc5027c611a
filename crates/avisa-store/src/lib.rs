//! Avisa's storage.
//!
//! [`Store`] is what the rest of Avisa uses: it speaks domain types in plain
//! text, seals every personal field before it reaches a [`Backend`], and opens
//! it after. Backends (SQLite, PostgreSQL) are chosen from the database URL by
//! [`connect`] and hold only sealed bytes, blind indexes and hashes, so a copy
//! of the database alone reveals no number, name, message or place.

mod alerts;
mod budgets;
mod cancel;
mod changes;
mod checkins;
mod console;
mod contacts;
mod db;
mod devices;
mod duress;
mod instances;
mod keys;
mod locator;
mod lockout;
mod migrations;
mod opt_outs;
mod outbox;
mod people;
mod person_text;
mod receipts;
mod retention;
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;

use avisa_core::PhoneNumber;
use avisa_core::crypto::{CryptoError, DataKey, FieldKey, Vault};
use uuid::Uuid;

pub use alerts::{
    ActiveAlerts, AlertLimit, AlertScope, AlertView, Fix, Inserted, NewAlert, Recipient,
    SealedAlert, format_case_number,
};
/// The kinds the store's API speaks, defined in `avisa_core`.
pub use avisa_core::{Coverage, MessageKind, Purpose};
pub use budgets::{BUDGET_WINDOWS_KEPT_MS, Budget, BudgetUnits, window};
pub use changes::ChangeListener;
pub use checkins::{Checkin, MAX_SCHEDULED_CHECKINS, NewCheckin};
pub use console::{
    AlertOwner, AuditEntry, Case, CaseAction, CaseEvent, Escalated, PersonAlert, QueueFilter,
    QueueItem, QueueView, SentMessage, Session, Staff, StaffLogin, StatRow,
};
pub use contacts::{Contact, ContactInput, MAX_CONTACTS};
pub use db::Db;
pub use devices::{Device, MAX_CODE_ATTEMPTS, VerifyOutcome};
pub use keys::{PersonKey, Rotated};
pub use lockout::{LoginFailures, PinAttempt};
pub use outbox::{Claimed, NewMessage, OutboxUpdate, RANK_AFTER_ALERTS};
pub use people::{Person, PressLookup, Profile};
pub use receipts::Unconfirmed;
pub use retention::{Cutoffs, Removed};

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"avisa data key check v1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The group-commit writer has stopped (the server is shutting down):
    /// the same request, later or on another instance.
    #[error("the alert writer has stopped")]
    WriterStopped,
    #[error("limit reached")]
    LimitReached,
    #[error("already exists")]
    Conflict,
    /// (The server's message says where the key was looked for.)
    #[error("the data key does not open this database: it was created with another key")]
    WrongKey,
    #[error("a stored value does not open with the data key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL: it must start with sqlite: or postgres://")]
    UnsupportedUrl,
    /// Not something this backend does (the reason says what does).
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("the database URL's {setting} names {path}, which cannot be read: {reason}")]
    MissingFile {
        setting: &'static str,
        path: String,
        reason: String,
    },
    #[error(
        "PostgreSQL's TLS certificate does not verify for this host against sslrootcert \
         (or the system's CAs): {0}"
    )]
    Certificate(String),
}

impl StoreError {
    /// The database could not be reached in time (no connection within
    /// the pool's acquire timeout, a lost connection): worth trying again,
    /// not a fault of the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::WriterStopped => true,
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_),
            ) => true,
            // A connection cut while it negotiated TLS (sslmode=prefer asks
            // first): the server is going or gone.
            StoreError::Database(sqlx::Error::Protocol(m)) => m.contains("SSLRequest"),
            StoreError::Database(sqlx::Error::WorkerCrashed) => true,
            // PostgreSQL going away under a statement: an administrator's
            // shutdown or a crash (57P01–57P03, "terminating connection due
            // to administrator command"), a connection exception (class
            // 08), or no connection slot left (53300).
            StoreError::Database(sqlx::Error::Database(e)) => e.code().is_some_and(|code| {
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            }),
            _ => false,
        }
    }
}

/// How many PostgreSQL connections this instance holds at most, and how
/// long a request waits for one before it is refused (a press then gets
/// 503 with Retry-After instead of hanging while the database is away).
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(2),
        }
    }
}

/// Connects to the database a URL names: `sqlite:PATH` (created if missing)
/// or `postgres://…`, and applies pending migrations.
pub async fn connect(url: &str) -> Result<Db, StoreError> {
    connect_with(url, PoolSettings::default()).await
}

/// [`connect`] with PostgreSQL pool settings.
pub async fn connect_with(url: &str, pool: PoolSettings) -> Result<Db, StoreError> {
    let db = if url.starts_with("sqlite:") {
        Db::sqlite(url).await?
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        missing_tls_files(url)?;
        Db::postgres(url, pool).await.map_err(|e| match e {
            StoreError::Database(d) if d.to_string().contains("certificate") => {
                StoreError::Certificate(d.to_string())
            }
            e => e,
        })?
    } else {
        return Err(StoreError::UnsupportedUrl);
    };
    db.migrate().await?;
    Ok(db)
}

/// The TLS files a PostgreSQL URL names (`sslrootcert`, `sslcert`,
/// `sslkey`) that cannot be read, named with their setting, before any
/// connection is tried (the driver reports only "No such file or
/// directory", several times over).
fn missing_tls_files(url: &str) -> Result<(), StoreError> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let setting = match name {
            "sslrootcert" => "sslrootcert",
            "sslcert" => "sslcert",
            "sslkey" => "sslkey",
            _ => continue,
        };
        // libpq's "system": the system's CAs, not a file.
        if value == "system" {
            continue;
        }
        let path = form_decoded(value);
        if let Err(e) = std::fs::metadata(&path) {
            return Err(StoreError::MissingFile {
                setting,
                path,
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

/// A query value as the driver reads it (`+` a space, `%XX` a byte), so a
/// path with a space or an accent is looked for where the driver looks.
fn form_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `key` is the master key of a database: Some(true) it opens it,
/// Some(false) it does not, None no key is bound yet (a new database).
/// Writes nothing.
pub async fn key_opens(db: &Db, key: &DataKey) -> Result<Option<bool>, StoreError> {
    keys::master_opens(db, key).await
}

/// Whether a database already has a data key bound to it (its first start
/// wrote a key check). A database without one may get a freshly generated key.
pub async fn has_data_key(db: &Db) -> Result<bool, StoreError> {
    Ok(db.meta_get(KEY_CHECK).await?.is_some() || db.meta_get(keys::ROOT_KEY).await?.is_some())
}

/// Re-wraps the database's root key under a new master key, in one
/// transaction (`avisa key rotate`); servers running on the database go on.
pub async fn rotate_master_key(
    db: &Db,
    old: &DataKey,
    new: &DataKey,
) -> Result<Rotated, StoreError> {
    keys::rotate_master(db, old, new).await
}

/// The store: plain domain types outside, sealed rows inside. Each
/// aggregate's methods and SQL live in its own module (`devices`, `people`,
/// `contacts`, `alerts`, `outbox`, `console`).
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
    vault: Arc<Vault>,
    keys: Arc<keys::Keyring>,
    /// This process's name among the instances on the database (random).
    instance: Arc<str>,
    contacts_cache: Arc<contacts::ContactsCache>,
}

/// What a sealed value is bound to: its table, column and row, so a value
/// moved to another place does not open.
pub(crate) fn aad(table_column: &str, id: Uuid) -> String {
    format!("{table_column}:{id}")
}

impl Store {
    /// Binds the store to its master key: on a new database a root key is
    /// made and stored wrapped by it; on an existing one a key that does
    /// not open the root key is refused.
    pub async fn open(db: Db, key: &DataKey) -> Result<Store, StoreError> {
        let root = keys::root_key(&db, key).await?;
        let store = Store {
            db: Arc::new(db),
            vault: Arc::new(Vault::new(&root)),
            keys: Arc::default(),
            instance: Uuid::new_v4().to_string().into(),
            contacts_cache: Arc::default(),
        };
        store.keys_for_everyone().await?;
        store.seal_plain_outcomes().await?;
        Ok(store)
    }

    /// The same store with a key cache of at most `cap` keys (by default
    /// 200,000): for a test or a bench with more people than it holds.
    pub fn with_key_cache(mut self, cap: usize) -> Store {
        self.keys = Arc::new(keys::Keyring::new(cap));
        self
    }

    /// The root key's vault: blind indexes, secret hashes, and sealing what
    /// belongs to nobody yet (a device before its code, a signed URL).
    /// A person's values are sealed with their own key, never with this.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn backend_kind(&self) -> &'static str {
        self.db.kind()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    pub async fn close(&self) {
        self.db.close().await
    }

    pub(crate) fn phone_index(&self, phone: &PhoneNumber) -> Vec<u8> {
        self.vault.blind_index("phone", phone.as_str().as_bytes())
    }
}

/// Seals an optional value with a person's key.
fn seal_opt(
    key: &FieldKey,
    place: &str,
    value: Option<&str>,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(value
        .map(|v| key.seal(place.as_bytes(), v.as_bytes()))
        .transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS file named in the URL is looked for where the driver looks:
    /// encoded spaces and accents decoded, a missing one named with its
    /// setting.
    #[test]
    fn tls_files_are_read_as_the_driver_reads_them() {
        assert_eq!(
            form_decoded("/etc/my%20certs/ca+%C3%A9.pem"),
            "/etc/my certs/ca é.pem"
        );
        assert_eq!(form_decoded("100%"), "100%");
        assert_eq!(form_decoded("%zz%2Fx"), "%zz/x");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("root ca.pem"), "x").expect("file");
        let at = dir.path().display().to_string().replace(' ', "%20");
        let url =
            |file: &str| format!("postgres://h/db?sslmode=verify-full&sslrootcert={at}/{file}");
        assert!(missing_tls_files(&url("root%20ca.pem")).is_ok());
        assert!(missing_tls_files(&url("root+ca.pem")).is_ok());
        match missing_tls_files(&url("other.pem")) {
            Err(StoreError::MissingFile { setting, path, .. }) => {
                assert_eq!(setting, "sslrootcert");
                assert!(path.ends_with("/other.pem"), "{path}");
            }
            other => panic!("a missing file is named: {other:?}"),
        }
    }
}
