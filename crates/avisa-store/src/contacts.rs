//! Contacts: the people told when the button is pressed, each with their own
//! message (name, number and message sealed), and the opened copies a press
//! keeps in memory while they are unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use avisa_core::crypto::FieldKey;
use avisa_core::{Language, PhoneNumber, UnixMillis};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::db_run;
use crate::keys::Keys;
use crate::{Store, StoreError, aad};

/// Contacts a person may have.
pub const MAX_CONTACTS: i64 = 10;

/// The people whose opened contacts are kept in memory, at most. A press
/// reads its person's contacts from here when the person's row says they
/// have not changed, which spares the database a read and the vault a dozen
/// openings per press. Sized for a raid (a few thousand people pressing);
/// when full it is emptied and refills with whoever presses next.
const CONTACTS_CACHE_PEOPLE: usize = 4096;

/// Person → (contacts version, their opened contacts).
type KeptContacts = HashMap<Uuid, (i64, Arc<[Contact]>)>;
pub(crate) type ContactsCache = Mutex<KeptContacts>;

/// Someone told when the button is pressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: Uuid,
    pub name: String,
    pub phone: PhoneNumber,
    pub message: String,
    pub language: Language,
    /// Gets a "nueva ubicación" SMS when the person moves during an alert
    /// (at most one per 15 minutes, three per alert).
    pub location_updates: bool,
    /// Gets, after an alert, what ICE's detainee locator needs to find the
    /// person (their [`avisa_core::locator::Locator`]).
    pub locator: bool,
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
    pub location_updates: bool,
    pub locator: bool,
}

#[derive(Debug, Clone, FromRow)]
struct ContactRow {
    id: Uuid,
    person_id: Uuid,
    name_enc: Vec<u8>,
    phone_enc: Vec<u8>,
    message_enc: Vec<u8>,
    language: Language,
    location_updates: bool,
    locator: bool,
    created_at: UnixMillis,
    updated_at: UnixMillis,
}

impl Store {
    fn contact_row(
        key: &FieldKey,
        id: Uuid,
        person_id: Uuid,
        input: &ContactInput,
        created_at: UnixMillis,
        updated_at: UnixMillis,
    ) -> Result<ContactRow, StoreError> {
        Ok(ContactRow {
            id,
            person_id,
            name_enc: key.seal(aad("contacts.name", id).as_bytes(), input.name.as_bytes())?,
            phone_enc: key.seal(
                aad("contacts.phone", id).as_bytes(),
                input.phone.as_str().as_bytes(),
            )?,
            message_enc: key.seal(
                aad("contacts.message", id).as_bytes(),
                input.message.as_bytes(),
            )?,
            language: input.language,
            location_updates: input.location_updates,
            locator: input.locator,
            created_at,
            updated_at,
        })
    }

    fn open_contact(keys: &Keys, row: ContactRow) -> Result<Contact, StoreError> {
        let id = row.id;
        Ok(Contact {
            id,
            name: keys.open_str(&aad("contacts.name", id), &row.name_enc)?,
            phone: PhoneNumber::from_e164_unchecked(
                keys.open_str(&aad("contacts.phone", id), &row.phone_enc)?,
            ),
            message: keys.open_str(&aad("contacts.message", id), &row.message_enc)?,
            language: row.language,
            location_updates: row.location_updates,
            locator: row.locator,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    pub async fn contacts(&self, person_id: Uuid) -> Result<Vec<Contact>, StoreError> {
        let sql = "SELECT * FROM contacts WHERE person_id = $1 ORDER BY created_at, id";
        let rows: Vec<ContactRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(person_id).fetch_all(pool).await
        })?;
        let keys = self
            .load_keys(rows.iter().map(|r| r.name_enc.as_slice()))
            .await?;
        rows.into_iter()
            .map(|row| Self::open_contact(&keys, row))
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

    /// Drops whatever this process keeps of a person's contacts.
    pub(crate) fn forget_contacts(&self, person_id: Uuid) {
        self.cache().remove(&person_id);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeptContacts> {
        // A panic while holding the lock leaves nothing half-written.
        self.contacts_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn contact_row_of(
        &self,
        person_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ContactRow>, StoreError> {
        let sql = "SELECT * FROM contacts WHERE person_id = $1 AND id = $2";
        Ok(db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(person_id)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    pub async fn contact(&self, person_id: Uuid, id: Uuid) -> Result<Option<Contact>, StoreError> {
        let row = self.contact_row_of(person_id, id).await?;
        let keys = self
            .load_keys(row.iter().map(|r| r.name_enc.as_slice()))
            .await?;
        row.map(|row| Self::open_contact(&keys, row)).transpose()
    }

    /// Adds a contact, unless the person already has [`MAX_CONTACTS`]
    /// ([`StoreError::LimitReached`]).
    pub async fn add_contact(
        &self,
        person_id: Uuid,
        input: &ContactInput,
        now: UnixMillis,
    ) -> Result<Contact, StoreError> {
        let key = self.person_key(person_id).await?;
        let c = Self::contact_row(&key, Uuid::now_v7(), person_id, input, now, now)?;
        let lock_person = self.db.dialect().lock_person();
        let mut tx = self.db.begin().await?;
        db_run!(&mut tx, |t| {
            // Serialise concurrent inserts for one person, so the limit holds.
            sqlx::query(lock_person)
                .bind(person_id)
                .execute(&mut **t)
                .await?;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contacts WHERE person_id = $1")
                .bind(person_id)
                .fetch_one(&mut **t)
                .await?;
            if n >= MAX_CONTACTS {
                return Err(StoreError::LimitReached);
            }
            sqlx::query(
                "INSERT INTO contacts (id, person_id, name_enc, phone_enc, message_enc, \
                 language, location_updates, locator, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(c.id)
            .bind(c.person_id)
            .bind(&c.name_enc)
            .bind(&c.phone_enc)
            .bind(&c.message_enc)
            .bind(c.language)
            .bind(c.location_updates)
            .bind(c.locator)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut **t)
            .await?;
        });
        tx.commit().await?;
        Self::open_contact(&self.keys_of(person_id, key), c)
    }

    pub async fn update_contact(
        &self,
        person_id: Uuid,
        id: Uuid,
        input: &ContactInput,
        now: UnixMillis,
    ) -> Result<Contact, StoreError> {
        let existing = self
            .contact_row_of(person_id, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let key = self.person_key(person_id).await?;
        let c = Self::contact_row(&key, id, person_id, input, existing.created_at, now)?;
        let sql = "UPDATE contacts SET name_enc = $1, phone_enc = $2, message_enc = $3, \
                   language = $4, updated_at = $5, location_updates = $6, locator = $7 \
                   WHERE person_id = $8 AND id = $9";
        let updated = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&c.name_enc)
                .bind(&c.phone_enc)
                .bind(&c.message_enc)
                .bind(c.language)
                .bind(c.updated_at)
                .bind(c.location_updates)
                .bind(c.locator)
                .bind(person_id)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated != 1 {
            return Err(StoreError::NotFound);
        }
        Self::open_contact(&self.keys_of(person_id, key), c)
    }

    pub async fn delete_contact(&self, person_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let sql = "DELETE FROM contacts WHERE person_id = $1 AND id = $2";
        let deleted = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(person_id)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}
