//! Avisa's storage.
//!
//! [`Store`] is what the rest of Avisa uses: it speaks domain types in plain
//! text, seals every personal field before it reaches a [`Backend`], and opens
//! it after. Backends (SQLite, PostgreSQL) are chosen from the database URL by
//! [`connect`] and hold only sealed bytes, blind indexes and hashes, so a copy
//! of the database alone reveals no number, name, message or place.

mod alerts;
mod backend;
mod console;
pub mod console_backend;
mod migrations;
mod postgres;
mod sql;
mod sql_console;
mod sqlite;
#[doc(hidden)]
pub mod testing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use avisa_core::crypto::{CryptoError, DataKey, Vault};
use avisa_core::{Language, PhoneNumber, UnixMillis};
use uuid::Uuid;

pub use alerts::{
    AlertView, Claimed, Coverage, Inserted, MessageKind, NewAlert, NewMessage, Purpose, Recipient,
};
pub use backend::{AlertInsert, Backend, ContactRow, DeviceRow, OutboxUpdate, PersonRow, PressRow};
pub use console::{AuditEntry, Case, CaseAction, CaseEvent, QueueItem, Staff, StatRow};
pub use console_backend::{QueueFilter, SessionRow};
pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

/// Verification attempts a one-time code allows before it is burnt.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// Contacts a person may have.
pub const MAX_CONTACTS: i64 = 10;

const KEY_CHECK: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"avisa data key check v1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("limit reached")]
    LimitReached,
    #[error("already exists")]
    Conflict,
    #[error(
        "the data key does not open this database: it was created with another key. \
         Set AVISA_DATA_KEY (or data.key in the data directory) to the key it was created with"
    )]
    WrongKey,
    #[error("a stored value does not open with the data key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL: it must start with sqlite: or postgres://")]
    UnsupportedUrl,
}

/// Connects to the database a URL names: `sqlite:PATH` (created if missing)
/// or `postgres://…`, and applies pending migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Backend>, StoreError> {
    let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
        Arc::new(SqliteBackend::connect(url).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PostgresBackend::connect(url, 16).await?)
    } else {
        return Err(StoreError::UnsupportedUrl);
    };
    backend.migrate().await?;
    Ok(backend)
}

/// Whether a database already has a data key bound to it (its first start
/// wrote a key check). A database without one may get a freshly generated key.
pub async fn has_data_key(backend: &dyn Backend) -> Result<bool, StoreError> {
    Ok(backend.meta_get(KEY_CHECK).await?.is_some())
}

/// A phone app installation.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: Uuid,
    pub person_id: Option<Uuid>,
    pub language: Language,
    pub verified_at: Option<UnixMillis>,
}

/// What the person tells Avisa about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub home_state: Option<String>,
    pub home_county: Option<String>,
    pub keyword: Option<String>,
    pub language: Language,
}

/// A person: a verified phone number and its profile.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: Uuid,
    pub phone: PhoneNumber,
    pub profile: Profile,
    /// argon2id hash of the cancel PIN, when set.
    pub pin_hash: Option<String>,
    /// Changes whenever the person's contacts change (see [`Store::alert_contacts`]).
    pub contacts_version: i64,
}

/// What a press needs before it writes, read in one round trip.
#[derive(Debug, Clone)]
pub struct PressLookup {
    pub device: Device,
    /// None while the device is not verified.
    pub person: Option<Person>,
    /// The alert this idempotency key already made.
    pub existing: Option<Uuid>,
    /// The person's alerts since the start of the rate-limit window.
    pub recent: i64,
}

/// The people whose opened contacts are kept in memory, at most. A press
/// reads its person's contacts from here when the person's row says they
/// have not changed, which spares the database a read and the vault a dozen
/// openings per press. Sized for a raid (a few thousand people pressing);
/// when full it is emptied and refills with whoever presses next.
const CONTACTS_CACHE_PEOPLE: usize = 4096;

/// Person → (contacts version, their opened contacts).
type KeptContacts = HashMap<Uuid, (i64, Arc<[Contact]>)>;
type ContactsCache = Mutex<KeptContacts>;

/// Someone told when the button is pressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: Uuid,
    pub name: String,
    pub phone: PhoneNumber,
    pub message: String,
    pub language: Language,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A contact as written by the person.
#[derive(Debug, Clone)]
pub struct ContactInput {
    pub name: String,
    pub phone: PhoneNumber,
    pub message: String,
    pub language: Language,
}

/// The result of entering a one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified {
        person_id: Uuid,
    },
    /// Wrong code; this many attempts remain (0: the code is burnt).
    Wrong {
        attempts_left: i32,
    },
    /// No code to check: never sent, already used, expired or burnt.
    NoCode,
}

/// The store: plain domain types outside, sealed rows inside.
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) vault: Arc<Vault>,
    contacts_cache: Arc<ContactsCache>,
}

pub(crate) fn aad(table_column: &str, id: Uuid) -> String {
    format!("{table_column}:{id}")
}

fn language(code: &str) -> Language {
    Language::from_code(code).unwrap_or_default()
}

/// A device row as the rest of Avisa sees it (nothing in it is sealed).
fn open_device(row: DeviceRow) -> Device {
    Device {
        id: row.id,
        person_id: row.person_id,
        language: language(&row.language),
        verified_at: row.verified_at,
    }
}

impl Store {
    /// Binds the store to its data key: on a new database the key check is
    /// written; on an existing one a key that does not open it is refused.
    pub async fn open(backend: Arc<dyn Backend>, key: &DataKey) -> Result<Store, StoreError> {
        let vault = Arc::new(Vault::new(key));
        match backend.meta_get(KEY_CHECK).await? {
            Some(sealed) => {
                let opened = vault
                    .open(KEY_CHECK.as_bytes(), &sealed)
                    .map_err(|_| StoreError::WrongKey)?;
                if opened.as_slice() != KEY_CHECK_PLAINTEXT {
                    return Err(StoreError::WrongKey);
                }
            }
            None => {
                let sealed = vault.seal(KEY_CHECK.as_bytes(), KEY_CHECK_PLAINTEXT)?;
                if !backend.meta_insert(KEY_CHECK, &sealed).await? {
                    // Another process bound a key first: it must be ours.
                    return Box::pin(Store::open(backend, key)).await;
                }
            }
        }
        Ok(Store {
            backend,
            vault,
            contacts_cache: Arc::default(),
        })
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    pub async fn close(&self) {
        self.backend.close().await
    }

    pub(crate) fn phone_index(&self, phone: &PhoneNumber) -> Vec<u8> {
        self.vault.blind_index("phone", phone.as_str().as_bytes())
    }

    fn code_domain(device_id: Uuid) -> String {
        format!("code:{device_id}")
    }

    fn seal_opt(&self, place: &str, value: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(value.map(|v| self.vault.seal_str(place, v)).transpose()?)
    }

    fn open_opt(&self, place: &str, value: Option<&[u8]>) -> Result<Option<String>, StoreError> {
        Ok(value
            .map(|v| self.vault.open_string(place, v))
            .transpose()?)
    }

    // ---- devices -------------------------------------------------------

    /// Registers a device for a phone with a one-time code (kept only as a
    /// keyed hash) and the hash of its bearer token.
    pub async fn register_device(
        &self,
        phone: &PhoneNumber,
        language: Language,
        token_hash: Vec<u8>,
        code: &str,
        code_expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<Device, StoreError> {
        let id = Uuid::now_v7();
        let row = DeviceRow {
            id,
            phone_index: self.phone_index(phone),
            phone_enc: self
                .vault
                .seal_str(&aad("devices.phone", id), phone.as_str())?,
            language: language.code().to_string(),
            token_hash,
            person_id: None,
            code_hash: Some(
                self.vault
                    .blind_index(&Self::code_domain(id), code.as_bytes()),
            ),
            code_expires_at: Some(code_expires_at),
            code_attempts: 0,
            verified_at: None,
            created_at: now,
        };
        self.backend.device_insert(&row).await?;
        Ok(Device {
            id,
            person_id: None,
            language,
            verified_at: None,
        })
    }

    /// How many devices registered for a phone since a time.
    pub async fn registrations_since(
        &self,
        phone: &PhoneNumber,
        since: UnixMillis,
    ) -> Result<i64, StoreError> {
        self.backend
            .devices_registered_since(&self.phone_index(phone), since)
            .await
    }

    pub async fn device_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<Device>, StoreError> {
        Ok(self
            .backend
            .device_by_token(token_hash)
            .await?
            .map(open_device))
    }

    /// Checks a one-time code, consuming one attempt.
    pub async fn verify_device(
        &self,
        device_id: Uuid,
        code: &str,
        now: UnixMillis,
    ) -> Result<VerifyOutcome, StoreError> {
        let Some(row) = self
            .backend
            .device_take_attempt(device_id, now, MAX_CODE_ATTEMPTS)
            .await?
        else {
            return Ok(VerifyOutcome::NoCode);
        };
        let stored = row.code_hash.as_deref().unwrap_or_default();
        if !self
            .vault
            .blind_index_matches(&Self::code_domain(device_id), code.as_bytes(), stored)
        {
            return Ok(VerifyOutcome::Wrong {
                attempts_left: (MAX_CODE_ATTEMPTS - row.code_attempts).max(0),
            });
        }
        let phone = self
            .vault
            .open_string(&aad("devices.phone", device_id), &row.phone_enc)?;
        let person_id = Uuid::now_v7();
        let person = PersonRow {
            id: person_id,
            phone_index: row.phone_index.clone(),
            phone_enc: self
                .vault
                .seal_str(&aad("people.phone", person_id), &phone)?,
            name_enc: None,
            home_state_enc: None,
            home_county_enc: None,
            keyword_enc: None,
            language: row.language.clone(),
            pin_hash: None,
            created_at: now,
            updated_at: now,
            contacts_version: 0,
        };
        let person_id = self.backend.device_verify(device_id, &person, now).await?;
        Ok(VerifyOutcome::Verified { person_id })
    }

    // ---- people ----------------------------------------------------------

    pub async fn person(&self, id: Uuid) -> Result<Option<Person>, StoreError> {
        match self.backend.person_get(id).await? {
            Some(row) => Ok(Some(self.open_person(row)?)),
            None => Ok(None),
        }
    }

    /// The device with this token hash and, when verified, its person.
    pub async fn device_and_person(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(Device, Option<Person>)>, StoreError> {
        let Some((d, p)) = self.backend.device_and_person_by_token(token_hash).await? else {
            return Ok(None);
        };
        Ok(Some((
            open_device(d),
            p.map(|row| self.open_person(row)).transpose()?,
        )))
    }

    fn open_person(&self, row: PersonRow) -> Result<Person, StoreError> {
        let id = row.id;
        let phone = self
            .vault
            .open_string(&aad("people.phone", id), &row.phone_enc)?;
        Ok(Person {
            id,
            phone: PhoneNumber::from_e164_unchecked(phone),
            profile: Profile {
                name: self.open_opt(&aad("people.name", id), row.name_enc.as_deref())?,
                home_state: self
                    .open_opt(&aad("people.home_state", id), row.home_state_enc.as_deref())?,
                home_county: self.open_opt(
                    &aad("people.home_county", id),
                    row.home_county_enc.as_deref(),
                )?,
                keyword: self.open_opt(&aad("people.keyword", id), row.keyword_enc.as_deref())?,
                language: language(&row.language),
            },
            pin_hash: row.pin_hash,
            contacts_version: row.contacts_version,
        })
    }

    /// The device with this token hash, its person, and what a press with
    /// `key` needs to know of the person's alerts since `since`.
    pub async fn press_lookup(
        &self,
        token_hash: &[u8],
        key: &str,
        since: UnixMillis,
    ) -> Result<Option<PressLookup>, StoreError> {
        let Some(row) = self.backend.press_lookup(token_hash, key, since).await? else {
            return Ok(None);
        };
        Ok(Some(PressLookup {
            device: open_device(row.device),
            person: row.person.map(|p| self.open_person(p)).transpose()?,
            existing: row.existing,
            recent: row.recent,
        }))
    }

    /// Writes the whole profile and the PIN hash (pass the current hash to
    /// keep the PIN).
    pub async fn update_profile(
        &self,
        id: Uuid,
        profile: &Profile,
        pin_hash: Option<String>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let row = PersonRow {
            id,
            phone_index: Vec::new(),
            phone_enc: Vec::new(),
            name_enc: self.seal_opt(&aad("people.name", id), profile.name.as_deref())?,
            home_state_enc: self
                .seal_opt(&aad("people.home_state", id), profile.home_state.as_deref())?,
            home_county_enc: self.seal_opt(
                &aad("people.home_county", id),
                profile.home_county.as_deref(),
            )?,
            keyword_enc: self.seal_opt(&aad("people.keyword", id), profile.keyword.as_deref())?,
            language: profile.language.code().to_string(),
            pin_hash,
            created_at: now,
            updated_at: now,
            contacts_version: 0,
        };
        if self.backend.person_update_profile(&row).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Deletes a person with every device and contact.
    pub async fn delete_person(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = self.backend.person_delete(id).await?;
        // Nothing of theirs stays in this process's memory either.
        self.cache().remove(&id);
        Ok(deleted)
    }

    // ---- contacts --------------------------------------------------------

    fn contact_row(
        &self,
        id: Uuid,
        person_id: Uuid,
        input: &ContactInput,
        created_at: UnixMillis,
        updated_at: UnixMillis,
    ) -> Result<ContactRow, StoreError> {
        Ok(ContactRow {
            id,
            person_id,
            name_enc: self
                .vault
                .seal_str(&aad("contacts.name", id), &input.name)?,
            phone_enc: self
                .vault
                .seal_str(&aad("contacts.phone", id), input.phone.as_str())?,
            message_enc: self
                .vault
                .seal_str(&aad("contacts.message", id), &input.message)?,
            language: input.language.code().to_string(),
            created_at,
            updated_at,
        })
    }

    fn open_contact(&self, row: ContactRow) -> Result<Contact, StoreError> {
        let id = row.id;
        Ok(Contact {
            id,
            name: self
                .vault
                .open_string(&aad("contacts.name", id), &row.name_enc)?,
            phone: PhoneNumber::from_e164_unchecked(
                self.vault
                    .open_string(&aad("contacts.phone", id), &row.phone_enc)?,
            ),
            message: self
                .vault
                .open_string(&aad("contacts.message", id), &row.message_enc)?,
            language: language(&row.language),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    pub async fn contacts(&self, person_id: Uuid) -> Result<Vec<Contact>, StoreError> {
        self.backend
            .contacts_list(person_id)
            .await?
            .into_iter()
            .map(|row| self.open_contact(row))
            .collect()
    }

    /// The person's contacts for an alert: from memory when `version` (the
    /// person's `contacts_version`, just read) says they have not changed
    /// since they were last opened, else read and opened. A version read
    /// before the contacts can only make the kept copy newer than its
    /// version, never older, so a stale list is never served.
    pub async fn alert_contacts(
        &self,
        person_id: Uuid,
        version: i64,
    ) -> Result<Arc<[Contact]>, StoreError> {
        if let Some((v, contacts)) = self.cache().get(&person_id)
            && *v == version
        {
            return Ok(contacts.clone());
        }
        let contacts: Arc<[Contact]> = self.contacts(person_id).await?.into();
        let mut cache = self.cache();
        if cache.len() >= CONTACTS_CACHE_PEOPLE {
            cache.clear();
        }
        cache.insert(person_id, (version, contacts.clone()));
        Ok(contacts)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeptContacts> {
        // A panic while holding the lock leaves nothing half-written.
        self.contacts_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn contact(&self, person_id: Uuid, id: Uuid) -> Result<Option<Contact>, StoreError> {
        self.backend
            .contact_get(person_id, id)
            .await?
            .map(|row| self.open_contact(row))
            .transpose()
    }

    /// Adds a contact, unless the person already has [`MAX_CONTACTS`].
    pub async fn add_contact(
        &self,
        person_id: Uuid,
        input: &ContactInput,
        now: UnixMillis,
    ) -> Result<Contact, StoreError> {
        let id = Uuid::now_v7();
        let row = self.contact_row(id, person_id, input, now, now)?;
        self.backend.contact_insert(&row, MAX_CONTACTS).await?;
        self.open_contact(row)
    }

    pub async fn update_contact(
        &self,
        person_id: Uuid,
        id: Uuid,
        input: &ContactInput,
        now: UnixMillis,
    ) -> Result<Contact, StoreError> {
        let existing = self
            .backend
            .contact_get(person_id, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let row = self.contact_row(id, person_id, input, existing.created_at, now)?;
        if !self.backend.contact_update(&row).await? {
            return Err(StoreError::NotFound);
        }
        self.open_contact(row)
    }

    pub async fn delete_contact(&self, person_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        self.backend.contact_delete(person_id, id).await
    }
}
