//! Keys (see `avisa_core::crypto` for the three levels): the root key,
//! wrapped by the master key in `meta`; each person's key, wrapped by the
//! root key in `person_keys`; and the master key's rotation.
//!
//! Sealing or opening a person's value needs their key. A path gets the
//! keys it needs as a value it holds ([`Keys`]: [`Store::load_keys`] for
//! the sealed values a read found, [`Store::load_people`] for people,
//! [`Store::person_key`] for one person, made on first use) and opens or
//! seals with that value. The process's [`Keyring`] is only a bounded cache
//! in front of the database: evicting a key costs a query, never a value
//! that does not open. Whether a person was deleted is asked of the
//! database (their key row is gone), never of memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use avisa_core::crypto::{CryptoError, DataKey, FieldKey, KEY_ID_LEN, Vault, sealed_key_id};
use uuid::Uuid;

use crate::db::{Db, Either, db_run};
use crate::{KEY_CHECK, KEY_CHECK_PLAINTEXT, Store, StoreError};

/// `meta` key of the root key, wrapped by the master key.
pub(crate) const ROOT_KEY: &str = "root_key";
/// Person keys the cache holds at most, by default (about 100 bytes each).
pub(crate) const CACHE_DEFAULT: usize = 200_000;
/// People whose keys one statement reads at most.
const KEYS_PER_QUERY: usize = 500;

/// A bounded cache of the person keys this process has unwrapped, in two
/// generations: a key read is kept in the young one; when that is full
/// the old one is dropped and the young one becomes old, so the keys in
/// use stay and at most `cap` are held.
pub(crate) struct Keyring {
    cap: usize,
    generations: Mutex<Generations>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Uuid, Arc<FieldKey>>,
    old: HashMap<Uuid, Arc<FieldKey>>,
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring::new(CACHE_DEFAULT)
    }
}

impl Keyring {
    pub(crate) fn new(cap: usize) -> Keyring {
        Keyring {
            cap: cap.max(2),
            generations: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, person: Uuid) -> Option<Arc<FieldKey>> {
        let mut g = self.lock();
        let found = match g.young.get(&person) {
            Some(key) => Some(key.clone()),
            None => g.old.remove(&person).inspect(|key| {
                self.keep(&mut g, person, key.clone());
            }),
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A key in memory, not counted (the database was asked anyway).
    fn get_quiet(&self, person: Uuid) -> Option<Arc<FieldKey>> {
        let g = self.lock();
        g.young.get(&person).or_else(|| g.old.get(&person)).cloned()
    }

    pub(crate) fn put(&self, person: Uuid, key: Arc<FieldKey>) {
        let mut g = self.lock();
        self.keep(&mut g, person, key);
    }

    fn keep(&self, g: &mut Generations, person: Uuid, key: Arc<FieldKey>) {
        if g.young.len() >= self.cap / 2 {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(person, key);
    }

    pub(crate) fn forget(&self, person: Uuid) {
        let mut g = self.lock();
        g.young.remove(&person);
        g.old.remove(&person);
    }

    /// Reads served from memory and reads that went to the database.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// The person keys one read or write needs, held by it: what it loaded
/// stays openable whatever the cache does meanwhile. Values sealed with the
/// root key (no person's) open too.
pub(crate) struct Keys {
    vault: Arc<Vault>,
    keys: HashMap<Uuid, Arc<FieldKey>>,
}

impl Keys {
    /// A person's key, if this set holds it.
    pub(crate) fn key(&self, person: Uuid) -> Result<&Arc<FieldKey>, StoreError> {
        self.keys
            .get(&person)
            .ok_or(StoreError::Crypto(CryptoError::Open))
    }

    /// Opens a value sealed with a key of this set or with the root key.
    pub(crate) fn open_str(&self, aad: &str, sealed: &[u8]) -> Result<String, StoreError> {
        let bytes = match sealed_key_id(sealed) {
            Some(id) => self
                .key(Uuid::from_bytes(id))?
                .open(aad.as_bytes(), sealed)?,
            None => self.vault.open(aad.as_bytes(), sealed)?,
        };
        String::from_utf8(bytes.to_vec()).map_err(|_| CryptoError::Open.into())
    }

    pub(crate) fn open_opt(
        &self,
        place: &str,
        value: Option<&[u8]>,
    ) -> Result<Option<String>, StoreError> {
        value.map(|v| self.open_str(place, v)).transpose()
    }

    /// Whether a value was sealed with the key of a person the database no
    /// longer has (loaded by [`Store::load_keys`], which asks it): the
    /// person was deleted.
    pub(crate) fn gone(&self, sealed: &[u8]) -> bool {
        sealed_key_id(sealed).is_some_and(|id| !self.keys.contains_key(&Uuid::from_bytes(id)))
    }

    /// Seals with a person's key of this set, or with the root key for
    /// nobody's value.
    pub(crate) fn seal(
        &self,
        owner: Option<Uuid>,
        place: &str,
        text: &str,
    ) -> Result<Vec<u8>, StoreError> {
        Ok(match owner {
            Some(person) => self.key(person)?.seal(place.as_bytes(), text.as_bytes())?,
            None => self.vault.seal_str(place, text)?,
        })
    }
}

/// A person's key, handed out by the store to seal an alert with
/// ([`Store::seal_alert`]): what the press's lookup loaded stays usable
/// however long the press takes.
#[derive(Clone)]
pub struct PersonKey(pub(crate) Arc<FieldKey>);

impl std::fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonKey(..)")
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
    match scrub_old_root(db).await {
        Ok(true) => {}
        // The rotation stands; the old copy goes with a later checkpoint.
        Ok(false) => tracing::warn!(
            "transactions older than the rotation kept running: the old wrapped root key may stay in the database files until the next checkpoint or vacuum"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "the old wrapped root key could not be scrubbed from the database files yet")
        }
    }
    Ok(if root.same_as(old) {
        Rotated::DoneRootIsOldKey
    } else {
        Rotated::Done
    })
}

/// After a rotation, the root key wrapped by the old master key is taken
/// out of the files where the database leaves old versions of a row: on
/// SQLite the WAL is checkpointed into the main file (whose freed cells
/// `secure_delete` zeroes) and truncated, waiting out readers for up to
/// five seconds; on PostgreSQL `meta` is rewritten into a new file (a few
/// rows: the lock is brief). A copy of those files taken afterwards opens
/// nothing with the old key. PostgreSQL's WAL and any archive or backup
/// made before still hold it: the old key must be destroyed, and the
/// README says so.
/// False when older transactions kept running throughout (SQLite's
/// readers, PostgreSQL's snapshots).
async fn scrub_old_root(db: &Db) -> Result<bool, StoreError> {
    match db.writer() {
        Either::Sqlite(pool) => crate::db::truncate_wal(pool).await,
        Either::Postgres(pool) => {
            let clear = crate::db::older_transactions_ended(pool).await?;
            sqlx::query("VACUUM FULL meta").execute(pool).await?;
            Ok(clear)
        }
    }
}

fn key_id(person: Uuid) -> [u8; KEY_ID_LEN] {
    *person.as_bytes()
}

impl Store {
    /// An empty set of keys: opens what the root key sealed.
    pub(crate) fn no_keys(&self) -> Keys {
        Keys {
            vault: self.vault.clone(),
            keys: HashMap::new(),
        }
    }

    /// A set of one person's key.
    pub(crate) fn keys_of(&self, person: Uuid, key: Arc<FieldKey>) -> Keys {
        let mut keys = self.no_keys();
        keys.keys.insert(person, key);
        keys
    }

    /// The key that seals `person`'s values: from memory, else unwrapped
    /// from the database, else made now (a person without one yet).
    pub(crate) async fn person_key(&self, person: Uuid) -> Result<Arc<FieldKey>, StoreError> {
        if let Some(key) = self.keys.get(person) {
            return Ok(key);
        }
        if let Some(key) = self.fetch_keys(&[person]).await?.remove(&person) {
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
        self.fetch_keys(&[person])
            .await?
            .remove(&person)
            .ok_or(StoreError::NotFound)
    }

    /// A person's key to seal an alert with (the press's lookup hands one
    /// out; this is for a caller that has none).
    pub async fn sealing_key(&self, person: Uuid) -> Result<PersonKey, StoreError> {
        Ok(PersonKey(self.person_key(person).await?))
    }

    /// The key cache's reads from memory and from the database, since start.
    pub fn key_cache_stats(&self) -> (u64, u64) {
        self.keys.stats()
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

    /// The keys of these people the database still has, unwrapped (and
    /// kept in the cache); a person without a key row is left out.
    async fn fetch_keys(
        &self,
        people: &[Uuid],
    ) -> Result<HashMap<Uuid, Arc<FieldKey>>, StoreError> {
        let mut found = HashMap::with_capacity(people.len());
        for chunk in people.chunks(KEYS_PER_QUERY) {
            let rows: Vec<(Uuid, Vec<u8>)> = db_run!(self.db.reader(), |pool| {
                let mut b = sqlx::QueryBuilder::new(
                    "SELECT person_id, wrapped FROM person_keys WHERE person_id IN (",
                );
                let mut list = b.separated(", ");
                for person in chunk {
                    list.push_bind(*person);
                }
                b.push(")");
                b.build_query_as().persistent(false).fetch_all(pool).await?
            });
            for (person, wrapped) in rows {
                let key = match self.keys.get_quiet(person) {
                    Some(key) => key,
                    None => {
                        let key = Arc::new(self.vault.open_person_key(key_id(person), &wrapped)?);
                        self.keys.put(person, key.clone());
                        key
                    }
                };
                found.insert(person, key);
            }
        }
        Ok(found)
    }

    /// The keys the given sealed values need, to open them with. A value
    /// whose person is gone finds no key (it was deleted: [`Keys::gone`]).
    pub(crate) async fn load_keys<'a>(
        &self,
        sealed: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Keys, StoreError> {
        let people: Vec<Uuid> = sealed
            .into_iter()
            .filter_map(sealed_key_id)
            .map(Uuid::from_bytes)
            .collect();
        self.load_people(people).await
    }

    /// The keys of these people: from the cache, the rest from the
    /// database in one query per few hundred.
    pub(crate) async fn load_people(
        &self,
        people: impl IntoIterator<Item = Uuid>,
    ) -> Result<Keys, StoreError> {
        let mut keys = self.no_keys();
        let mut missing: Vec<Uuid> = Vec::new();
        for person in people {
            if keys.keys.contains_key(&person) || missing.contains(&person) {
                continue;
            }
            match self.keys.get(person) {
                Some(key) => {
                    keys.keys.insert(person, key);
                }
                None => missing.push(person),
            }
        }
        if !missing.is_empty() {
            keys.keys.extend(self.fetch_keys(&missing).await?);
        }
        Ok(keys)
    }

    /// The keys of the people the database still has among these, asked
    /// of the database whatever the cache holds: a message's sending
    /// decides by it whether its person was deleted.
    pub(crate) async fn live_keys<'a>(
        &self,
        sealed: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Keys, StoreError> {
        let mut people: Vec<Uuid> = sealed
            .into_iter()
            .filter_map(sealed_key_id)
            .map(Uuid::from_bytes)
            .collect();
        people.sort_unstable();
        people.dedup();
        let mut keys = self.no_keys();
        keys.keys = self.fetch_keys(&people).await?;
        Ok(keys)
    }

    /// The keys of these messages' owners (made for an owner who has none
    /// yet), to seal them with ([`Store::outbox_row`]).
    pub(crate) async fn owners_keys(
        &self,
        messages: &[crate::NewMessage],
    ) -> Result<Keys, StoreError> {
        let mut keys = self.no_keys();
        for owner in messages.iter().filter_map(|m| m.owner) {
            if let std::collections::hash_map::Entry::Vacant(slot) = keys.keys.entry(owner) {
                slot.insert(self.person_key(owner).await?);
            }
        }
        Ok(keys)
    }
}
