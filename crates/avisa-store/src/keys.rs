//! Keys (see `avisa_core::crypto` for the three levels): the root key,
//! wrapped by the master key in `meta`; each person's key, wrapped by the
//! root key in `person_keys`; and the master key's rotation.
//!
//! Sealing a person's value needs their key in memory: an async path gets
//! it with [`Store::person_key`] (created on first use). Opening finds the
//! key's id in the value itself: a read first loads the keys its rows need
//! ([`Store::load_keys`], one query per key not yet in memory), then opens
//! each value with [`Store::open_str`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use avisa_core::crypto::{DataKey, FieldKey, KEY_ID_LEN, Vault, sealed_key_id};
use uuid::Uuid;

use crate::db::{Db, db_run};
use crate::{KEY_CHECK, KEY_CHECK_PLAINTEXT, Store, StoreError};

/// `meta` key of the root key, wrapped by the master key.
pub(crate) const ROOT_KEY: &str = "root_key";
/// Keys kept in memory at most; beyond it the ring starts again empty
/// (keys are reloaded on demand).
const RING_CAP: usize = 200_000;

/// The person keys this process has unwrapped.
#[derive(Default)]
pub(crate) struct Keyring {
    keys: RwLock<HashMap<Uuid, Arc<FieldKey>>>,
}

impl Keyring {
    pub(crate) fn get(&self, person: Uuid) -> Option<Arc<FieldKey>> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&person)
            .cloned()
    }

    pub(crate) fn put(&self, person: Uuid, key: FieldKey) -> Arc<FieldKey> {
        let key = Arc::new(key);
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= RING_CAP {
            keys.clear();
        }
        keys.insert(person, key.clone());
        key
    }

    pub(crate) fn forget(&self, person: Uuid) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&person);
    }
}

/// What the master key unwraps: the root key. On a new database a random
/// one is made and stored; a database sealed before root keys existed has
/// the master key itself as its root (its values were sealed with it), now
/// stored wrapped so the master key can be rotated.
pub(crate) async fn root_key(db: &Db, master: &DataKey) -> Result<DataKey, StoreError> {
    let wrapper = Vault::new(master);
    loop {
        if let Some(wrapped) = db.meta_get(ROOT_KEY).await? {
            return wrapper
                .unwrap_key(ROOT_KEY.as_bytes(), &wrapped)
                .map_err(|_| StoreError::WrongKey);
        }
        let root = match db.meta_get(KEY_CHECK).await? {
            Some(check) => {
                let opened = wrapper
                    .open(KEY_CHECK.as_bytes(), &check)
                    .map_err(|_| StoreError::WrongKey)?;
                if opened.as_slice() != KEY_CHECK_PLAINTEXT {
                    return Err(StoreError::WrongKey);
                }
                master.clone()
            }
            // A new database: the root key first, then the key check, so a
            // process starting beside this one never takes a key check
            // without a root key for an older database.
            None => DataKey::generate()?,
        };
        if db
            .meta_insert(ROOT_KEY, &wrapper.wrap_key(ROOT_KEY.as_bytes(), &root)?)
            .await?
        {
            let check = wrapper.seal(KEY_CHECK.as_bytes(), KEY_CHECK_PLAINTEXT)?;
            db.meta_insert(KEY_CHECK, &check).await?;
        }
        // Else another process stored its root key first: the loop reads
        // it, and refuses our master key if it is not the same.
    }
}

/// Whether `key` is the master key of a database: Some(true) it opens its
/// root key (or, before the first start with root keys, its key check),
/// Some(false) it does not, None no key is bound yet. Writes nothing.
pub(crate) async fn master_opens(db: &Db, key: &DataKey) -> Result<Option<bool>, StoreError> {
    let wrapper = Vault::new(key);
    if let Some(wrapped) = db.meta_get(ROOT_KEY).await? {
        return Ok(Some(
            wrapper.unwrap_key(ROOT_KEY.as_bytes(), &wrapped).is_ok(),
        ));
    }
    let Some(check) = db.meta_get(KEY_CHECK).await? else {
        return Ok(None);
    };
    Ok(Some(
        wrapper
            .open(KEY_CHECK.as_bytes(), &check)
            .is_ok_and(|o| o.as_slice() == KEY_CHECK_PLAINTEXT),
    ))
}

/// What [`rotate_master`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// The root key is wrapped by the new master key only.
    Done,
    /// Done, but this database predates root keys: its root key is the old
    /// master key, which still opens what was sealed before per-person
    /// keys (keep the old key as secret as before).
    DoneRootIsOldKey,
}

/// Re-wraps the root key (and the key check) under `new` in one
/// transaction: every person's key, wrapped by the root, follows without
/// being touched, and running servers (which hold the root key, not the
/// master key) go on undisturbed. Refuses an `old` key that does not open
/// the database.
pub(crate) async fn rotate_master(
    db: &Db,
    old: &DataKey,
    new: &DataKey,
) -> Result<Rotated, StoreError> {
    let root = root_key(db, old).await?;
    let wrapper = Vault::new(new);
    let wrapped = wrapper.wrap_key(ROOT_KEY.as_bytes(), &root)?;
    let check = wrapper.seal(KEY_CHECK.as_bytes(), KEY_CHECK_PLAINTEXT)?;
    let old_wrapper = Vault::new(old);
    let mut tx = db.begin().await?;
    // Read again inside the transaction: a rotation that ran meanwhile
    // leaves a root the old key no longer opens, and this one stops.
    let sql = "SELECT value FROM meta WHERE key = $1";
    let current: Option<Vec<u8>> = db_run!(&mut tx, |tx| {
        sqlx::query_scalar(sql)
            .bind(ROOT_KEY)
            .fetch_optional(&mut **tx)
            .await
    })?;
    let still_old =
        current.is_some_and(|w| old_wrapper.unwrap_key(ROOT_KEY.as_bytes(), &w).is_ok());
    if !still_old {
        return Err(StoreError::WrongKey);
    }
    let sql = "UPDATE meta SET value = $2 WHERE key = $1";
    for (key, value) in [(ROOT_KEY, &wrapped), (KEY_CHECK, &check)] {
        db_run!(&mut tx, |tx| {
            sqlx::query(sql)
                .bind(key)
                .bind(value)
                .execute(&mut **tx)
                .await
                .map(|_| ())
        })?;
    }
    tx.commit().await?;
    Ok(if root.same_as(old) {
        Rotated::DoneRootIsOldKey
    } else {
        Rotated::Done
    })
}

fn key_id(person: Uuid) -> [u8; KEY_ID_LEN] {
    *person.as_bytes()
}

impl Store {
    /// The key that seals `person`'s values: from memory, else unwrapped
    /// from the database, else made now (a person without one yet).
    pub(crate) async fn person_key(&self, person: Uuid) -> Result<Arc<FieldKey>, StoreError> {
        if let Some(key) = self.keys.get(person) {
            return Ok(key);
        }
        if let Some(key) = self.fetch_key(person).await? {
            return Ok(key);
        }
        let (_, wrapped) = self.vault.new_person_key(key_id(person))?;
        // The person's row must exist (a key outliving its person would
        // be a key nobody deletes): the insert takes it from `people`.
        let sql = "INSERT INTO person_keys (person_id, wrapped) \
                   SELECT id, $2 FROM people WHERE id = $1 \
                   ON CONFLICT (person_id) DO NOTHING";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(person)
                .bind(&wrapped)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        // Whichever insert won (another request or instance may have made
        // one at the same moment) is the key.
        self.fetch_key(person).await?.ok_or(StoreError::NotFound)
    }

    /// Gives every person without a key one (people created before keys
    /// per person), so a read never finds a person it cannot open; run at
    /// start. Their earlier values stay sealed with the root key and open
    /// as before; new ones use the person's key.
    pub(crate) async fn keys_for_everyone(&self) -> Result<u64, StoreError> {
        let sql = "SELECT id FROM people WHERE id NOT IN (SELECT person_id FROM person_keys)";
        let people: Vec<Uuid> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql).fetch_all(pool).await
        })?;
        for &person in &people {
            self.person_key(person).await?;
        }
        Ok(people.len() as u64)
    }

    /// The key of the person an alert belongs to.
    pub(crate) async fn alert_key(&self, alert_id: Uuid) -> Result<Arc<FieldKey>, StoreError> {
        let sql = "SELECT person_id FROM alerts WHERE id = $1";
        let person: Option<Uuid> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(alert_id)
                .fetch_optional(pool)
                .await
        })?;
        self.person_key(person.ok_or(StoreError::NotFound)?).await
    }

    async fn fetch_key(&self, person: Uuid) -> Result<Option<Arc<FieldKey>>, StoreError> {
        let sql = "SELECT wrapped FROM person_keys WHERE person_id = $1";
        let wrapped: Option<Vec<u8>> = db_run!(self.db.reader(), |pool| {
            sqlx::query_scalar(sql)
                .bind(person)
                .fetch_optional(pool)
                .await
        })?;
        wrapped
            .map(|w| {
                let key = self.vault.open_person_key(key_id(person), &w)?;
                Ok(self.keys.put(person, key))
            })
            .transpose()
    }

    /// Loads the keys the given sealed values need, so [`Store::open_str`]
    /// can open them. A key whose person is gone stays unloaded (its
    /// values then do not open: they were deleted).
    pub(crate) async fn load_keys<'a>(
        &self,
        sealed: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StoreError> {
        let people: Vec<Uuid> = sealed
            .into_iter()
            .filter_map(sealed_key_id)
            .map(Uuid::from_bytes)
            .collect();
        self.load_people(people).await
    }

    /// Makes sure the keys of these messages' owners are in memory (made
    /// for an owner who has none yet), for [`Store::outbox_row`].
    pub(crate) async fn owners_keys(
        &self,
        messages: &[crate::NewMessage],
    ) -> Result<(), StoreError> {
        let mut owners: Vec<Uuid> = messages.iter().filter_map(|m| m.owner).collect();
        owners.dedup();
        for owner in owners {
            self.person_key(owner).await?;
        }
        Ok(())
    }

    /// Loads the keys of these people (those not in memory yet).
    pub(crate) async fn load_people(
        &self,
        people: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), StoreError> {
        let mut missing: Vec<Uuid> = Vec::new();
        for person in people {
            if self.keys.get(person).is_none() && !missing.contains(&person) {
                missing.push(person);
            }
        }
        for person in missing {
            self.fetch_key(person).await?;
        }
        Ok(())
    }

    /// Opens a value sealed with a person's key (loaded by
    /// [`Store::load_keys`] or [`Store::person_key`]) or with the root key.
    pub(crate) fn open_str(&self, aad: &str, sealed: &[u8]) -> Result<String, StoreError> {
        let bytes = match sealed_key_id(sealed) {
            Some(id) => self
                .keys
                .get(Uuid::from_bytes(id))
                .ok_or(avisa_core::crypto::CryptoError::Open)?
                .open(aad.as_bytes(), sealed)?,
            None => self.vault.open(aad.as_bytes(), sealed)?,
        };
        String::from_utf8(bytes.to_vec()).map_err(|_| avisa_core::crypto::CryptoError::Open.into())
    }

    /// Whether a value was sealed with a person's key that is not in
    /// memory after [`Store::load_keys`]: the person was deleted.
    pub(crate) fn key_gone(&self, sealed: &[u8]) -> bool {
        sealed_key_id(sealed).is_some_and(|id| self.keys.get(Uuid::from_bytes(id)).is_none())
    }

    /// Brings a person's key into memory (made if they have none), for the
    /// sync sealing that follows ([`Store::seal_alert`]).
    pub async fn load_person_key(&self, person: Uuid) -> Result<(), StoreError> {
        self.person_key(person).await.map(|_| ())
    }

    /// The key of a person already in memory (a sync path after an async
    /// one loaded it, as [`Store::seal_alert`] after the press's lookup).
    pub(crate) fn loaded_key(&self, person: Uuid) -> Result<Arc<FieldKey>, StoreError> {
        self.keys
            .get(person)
            .ok_or(StoreError::Crypto(avisa_core::crypto::CryptoError::Open))
    }
}
