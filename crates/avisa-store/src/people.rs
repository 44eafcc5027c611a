//! People: one per verified phone number, with the profile (sealed), the
//! PIN's hash and its lockout, and what every phone request reads first.

use std::sync::{Arc, LazyLock};

use avisa_core::{Language, PhoneNumber, UnixMillis};
use sqlx::{AssertSqlSafe, FromRow, Row};
use uuid::Uuid;

use crate::db::db_run;
use crate::devices::Device;
use crate::keys::PersonKey;
use crate::{Store, StoreError, aad, seal_opt};

/// What the person tells Avisa about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub home_state: Option<String>,
    pub home_county: Option<String>,
    pub keyword: Option<String>,
    pub language: Language,
    /// Each contact's SMS says who is asking at its end, not first.
    pub name_at_end: bool,
}

/// A person: a verified phone number and its profile.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: Uuid,
    pub phone: PhoneNumber,
    pub profile: Profile,
    /// argon2id hash of the cancel PIN, when set.
    pub pin_hash: Option<String>,
    /// argon2id hash of the duress PIN, or of a random secret when none is
    /// set (see migration 0006); None only before the first PIN.
    pub duress_hash: Option<String>,
    /// argon2id hash of a second PIN that acts as the duress PIN: one a
    /// session unlocked with the duress PIN chose as its "duress PIN" (a PIN
    /// set under duress is itself a duress PIN). None until one is set.
    pub decoy_hash: Option<String>,
    /// Changes whenever the person's contacts change (see [`Store::alert_contacts`]).
    pub contacts_version: i64,
    /// Their key, loaded with them: a press seals its alert with it.
    pub key: PersonKey,
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

/// A person's row as read (`SELECT *`; the lockout columns are read on
/// their own).
#[derive(Debug, Clone, FromRow)]
struct PersonRow {
    id: Uuid,
    phone_enc: Vec<u8>,
    name_enc: Option<Vec<u8>>,
    home_state_enc: Option<Vec<u8>>,
    home_county_enc: Option<Vec<u8>>,
    keyword_enc: Option<Vec<u8>>,
    language: Language,
    name_at_end: bool,
    pin_hash: Option<String>,
    duress_hash: Option<String>,
    decoy_hash: Option<String>,
    /// Bumped by the database's triggers on every change to the person's
    /// contacts; never written by Avisa.
    contacts_version: i64,
}

/// The device columns of the look-ups below, named apart from the person's.
#[derive(FromRow)]
struct DeviceHead {
    device_id: Uuid,
    device_person_id: Option<Uuid>,
    device_language: Language,
    device_verified_at: Option<UnixMillis>,
}

impl From<DeviceHead> for Device {
    fn from(d: DeviceHead) -> Self {
        Device {
            id: d.device_id,
            person_id: d.device_person_id,
            language: d.device_language,
            verified_at: d.device_verified_at,
        }
    }
}

const DEVICE_AND_PERSON: &str = "SELECT d.id AS device_id, d.person_id AS device_person_id, \
     d.language AS device_language, d.verified_at AS device_verified_at, p.*";
const BY_TOKEN: &str = " FROM devices d LEFT JOIN people p ON p.id = d.person_id \
     WHERE d.token_hash = $1";

/// The device by its token ($1) and its person: what every phone request
/// reads first.
static LOOKUP_SQL: LazyLock<String> = LazyLock::new(|| format!("{DEVICE_AND_PERSON}{BY_TOKEN}"));

/// [`LOOKUP_SQL`] with what a press needs of the person's alerts: the alert
/// its idempotency key ($2) already made, and how many of the same kind
/// (practice $4 or not) they raised since $3 ([`recent`]).
static PRESS_LOOKUP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{DEVICE_AND_PERSON}, \
         (SELECT a.id FROM alerts a WHERE a.person_id = d.person_id \
            AND a.idempotency_key = $2) AS existing, \
         (SELECT COUNT(*) FROM alerts a WHERE a.person_id = d.person_id \
            AND {}) AS recent{BY_TOKEN}",
        recent("$3", "$4")
    )
});

/// The alerts a press's limit counts (of the alerts `a`): those of its own
/// kind since `since` — practice (`practice` true) has a limit of its own,
/// so rehearsing never blocks a real press — cancelled or not: a loop of
/// press-and-cancel would otherwise message the contacts without end. A real
/// press past it is still raised (see `alerting::raise`). The arguments are
/// the statement's placeholders.
pub(crate) fn recent(since: &str, practice: &str) -> String {
    format!("a.created_at >= {since} AND a.practice = {practice}")
}

/// A look-up's answer: the device, its person's row, and (for a press) the
/// key's alert and the recent count.
type Lookup = (DeviceHead, Option<PersonRow>, Option<(Option<Uuid>, i64)>);

impl Store {
    pub async fn person(&self, id: Uuid) -> Result<Option<Person>, StoreError> {
        let sql = "SELECT * FROM people WHERE id = $1";
        let row: Option<PersonRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await
        })?;
        match row {
            Some(r) => Ok(Some(self.open_person(r).await?)),
            None => Ok(None),
        }
    }

    /// The person with this (verified) phone number.
    pub async fn person_by_phone(&self, phone: &PhoneNumber) -> Result<Option<Person>, StoreError> {
        let sql = "SELECT * FROM people WHERE phone_index = $1";
        let index = self.phone_index(phone);
        let row: Option<PersonRow> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).bind(&index).fetch_optional(pool).await
        })?;
        match row {
            Some(r) => Ok(Some(self.open_person(r).await?)),
            None => Ok(None),
        }
    }

    /// The device with this token hash and, when verified, its person.
    pub async fn device_and_person(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(Device, Option<Person>)>, StoreError> {
        let Some((device, person, _)) = self.lookup(token_hash, None).await? else {
            return Ok(None);
        };
        Ok(Some((
            device.into(),
            match person {
                Some(p) => Some(self.open_person(p).await?),
                None => None,
            },
        )))
    }

    /// The device with this token hash, its person, and what a press with
    /// `key` needs to know of the person's alerts since `since` (of its own
    /// kind, practice or real, see [`recent`]).
    pub async fn press_lookup(
        &self,
        token_hash: &[u8],
        key: &str,
        since: UnixMillis,
        practice: bool,
    ) -> Result<Option<PressLookup>, StoreError> {
        let Some((device, person, press)) = self
            .lookup(token_hash, Some((key, since, practice)))
            .await?
        else {
            return Ok(None);
        };
        let (existing, recent) = press.unwrap_or_default();
        Ok(Some(PressLookup {
            device: device.into(),
            person: match person {
                Some(p) => Some(self.open_person(p).await?),
                None => None,
            },
            existing,
            recent,
        }))
    }

    /// One round trip: the device, its person, and for a press the key's
    /// alert and the recent count.
    async fn lookup(
        &self,
        token_hash: &[u8],
        press: Option<(&str, UnixMillis, bool)>,
    ) -> Result<Option<Lookup>, StoreError> {
        let sql = match press {
            None => LOOKUP_SQL.as_str(),
            Some(_) => PRESS_LOOKUP_SQL.as_str(),
        };
        Ok(db_run!(self.db.reader(), |pool| {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(token_hash);
            if let Some((key, since, practice)) = press {
                query = query.bind(key).bind(since).bind(practice);
            }
            match query.fetch_optional(pool).await? {
                None => None,
                Some(r) => {
                    let device = DeviceHead::from_row(&r)?;
                    let person = match device.device_person_id {
                        Some(_) => Some(PersonRow::from_row(&r)?),
                        None => None,
                    };
                    let press = match press {
                        Some(_) => Some((r.try_get("existing")?, r.try_get("recent")?)),
                        None => None,
                    };
                    Some((device, person, press))
                }
            }
        }))
    }

    /// Opens a person's row, with their key (loaded, or made for a person
    /// who has none yet), which the person carries for later sealing.
    async fn open_person(&self, row: PersonRow) -> Result<Person, StoreError> {
        let id = row.id;
        let key = self.person_key(id).await?;
        let keys = self.keys_of(id, key.clone());
        let phone = keys.open_str(&aad("people.phone", id), &row.phone_enc)?;
        Ok(Person {
            id,
            phone: PhoneNumber::from_e164_unchecked(phone),
            profile: Profile {
                name: keys.open_opt(&aad("people.name", id), row.name_enc.as_deref())?,
                home_state: keys
                    .open_opt(&aad("people.home_state", id), row.home_state_enc.as_deref())?,
                home_county: keys.open_opt(
                    &aad("people.home_county", id),
                    row.home_county_enc.as_deref(),
                )?,
                keyword: keys.open_opt(&aad("people.keyword", id), row.keyword_enc.as_deref())?,
                language: row.language,
                name_at_end: row.name_at_end,
            },
            pin_hash: row.pin_hash,
            duress_hash: row.duress_hash,
            decoy_hash: row.decoy_hash,
            contacts_version: row.contacts_version,
            key: PersonKey(key),
        })
    }

    /// The person a device's verified phone belongs to: created now if no
    /// person has that phone yet. The device is linked to them, and other
    /// unverified devices of the same phone are removed.
    pub(crate) async fn verified_person(
        &self,
        device_id: Uuid,
        phone_index: &[u8],
        phone: &str,
        language: Language,
        now: UnixMillis,
    ) -> Result<Uuid, StoreError> {
        // A random id: a person's row says nothing of when they joined.
        let new_id = Uuid::new_v4();
        let (key, wrapped) = self.vault.new_person_key(*new_id.as_bytes())?;
        let phone_enc = key.seal(aad("people.phone", new_id).as_bytes(), phone.as_bytes())?;
        let mut tx = self.db.begin().await?;
        let person_id = db_run!(&mut tx, |t| {
            let created = sqlx::query(
                "INSERT INTO people (id, phone_index, phone_enc, language, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (phone_index) DO NOTHING",
            )
            .bind(new_id)
            .bind(phone_index)
            .bind(&phone_enc)
            .bind(language)
            .bind(now)
            .execute(&mut **t)
            .await?
            .rows_affected();
            if created == 1 {
                sqlx::query("INSERT INTO person_keys (person_id, wrapped) VALUES ($1, $2)")
                    .bind(new_id)
                    .bind(&wrapped)
                    .execute(&mut **t)
                    .await?;
            }
            let person_id: Uuid =
                sqlx::query_scalar("SELECT id FROM people WHERE phone_index = $1")
                    .bind(phone_index)
                    .fetch_one(&mut **t)
                    .await?;
            let linked = sqlx::query(
                "UPDATE devices SET person_id = $1, verified_at = $2, code_hash = NULL, \
                 code_expires_at = NULL WHERE id = $3",
            )
            .bind(person_id)
            .bind(now)
            .bind(device_id)
            .execute(&mut **t)
            .await?
            .rows_affected();
            if linked != 1 {
                return Err(StoreError::NotFound);
            }
            // Abandoned registrations of the same phone hold nothing useful.
            sqlx::query(
                "DELETE FROM devices WHERE phone_index = $1 AND person_id IS NULL AND id <> $2",
            )
            .bind(phone_index)
            .bind(device_id)
            .execute(&mut **t)
            .await?;
            person_id
        });
        tx.commit().await?;
        if person_id == new_id {
            self.keys.put(new_id, Arc::new(key));
        }
        // The device's copy of the number, sealed with the root key while
        // it belonged to nobody, now goes under the person's key.
        let key = self.person_key(person_id).await?;
        let phone_enc = key.seal(aad("devices.phone", device_id).as_bytes(), phone.as_bytes())?;
        let sql = "UPDATE devices SET phone_enc = $1 WHERE id = $2";
        db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&phone_enc)
                .bind(device_id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(person_id)
    }

    /// Writes the whole profile and the PIN hash (pass the current hash to
    /// keep the PIN); the duress hash only when `duress_hash` is Some.
    pub async fn update_profile(
        &self,
        id: Uuid,
        profile: &Profile,
        pin_hash: Option<String>,
        duress_hash: Option<String>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let key = self.person_key(id).await?;
        let name = seal_opt(&key, &aad("people.name", id), profile.name.as_deref())?;
        let state = seal_opt(
            &key,
            &aad("people.home_state", id),
            profile.home_state.as_deref(),
        )?;
        let county = seal_opt(
            &key,
            &aad("people.home_county", id),
            profile.home_county.as_deref(),
        )?;
        let keyword = seal_opt(&key, &aad("people.keyword", id), profile.keyword.as_deref())?;
        let sql = "UPDATE people SET name_enc = $1, home_state_enc = $2, home_county_enc = $3, \
                   keyword_enc = $4, language = $5, pin_hash = $6, updated_at = $7, \
                   duress_hash = COALESCE($9, duress_hash), name_at_end = $10 WHERE id = $8";
        let updated = db_run!(self.db.writer(), |pool| {
            sqlx::query(sql)
                .bind(&name)
                .bind(&state)
                .bind(&county)
                .bind(&keyword)
                .bind(profile.language)
                .bind(&pin_hash)
                .bind(now)
                .bind(id)
                .bind(&duress_hash)
                .bind(profile.name_at_end)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Deletes a person with every device, contact and alert, and every
    /// SMS budget row that names their number or id. Their key goes first,
    /// in the same transaction: a copy of their values made afterwards
    /// (free pages, SQLite's WAL) cannot be opened by anyone. Then what the
    /// database keeps of the rows is cleared where it can be
    /// ([`Store::scrub`]). PostgreSQL's WAL keeps the wrapped key until its
    /// segments are recycled (README, "Keys, backups and retention").
    pub async fn delete_person(&self, id: Uuid) -> Result<bool, StoreError> {
        let person = self.person(id).await?;
        let strays = match &person {
            Some(person) => self.stray_messages_to(&person.phone).await?,
            None => Vec::new(),
        };
        let mut tx = self.db.begin().await?;
        if let Some(person) = &person {
            self.forget_budgets_of(&mut tx, id, &person.phone, avisa_core::now_millis())
                .await?;
        }
        let deleted = db_run!(&mut tx, |t| {
            sqlx::query("DELETE FROM person_keys WHERE person_id = $1")
                .bind(id)
                .execute(&mut **t)
                .await?;
            for stray in &strays {
                sqlx::query("DELETE FROM outbox WHERE id = $1")
                    .bind(stray)
                    .execute(&mut **t)
                    .await?;
            }
            // Devices, contacts and alerts go with it (ON DELETE CASCADE).
            sqlx::query("DELETE FROM people WHERE id = $1")
                .bind(id)
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        // Nothing of theirs stays in this process's memory either.
        self.keys.forget(id);
        self.forget_contacts(id);
        if deleted == 1
            && let Err(e) = self.scrub().await
        {
            // The key is gone already; the next retention run scrubs again.
            tracing::warn!(error = %e, "scrubbing after a deletion failed");
        }
        Ok(deleted == 1)
    }

    /// Messages to `phone` sealed with the root key (codes, replies to a
    /// number not yet known as the person's): found by opening them, as
    /// no index names their recipient. Retention deletes these after a day,
    /// so there are few.
    async fn stray_messages_to(&self, phone: &PhoneNumber) -> Result<Vec<Uuid>, StoreError> {
        let sql = "SELECT id, to_enc FROM outbox WHERE alert_id IS NULL \
                   AND purpose IN ('code', 'reply')";
        let rows: Vec<(Uuid, Vec<u8>)> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql).fetch_all(pool).await
        })?;
        let keys = self.no_keys();
        Ok(rows
            .into_iter()
            .filter(|(id, to)| {
                avisa_core::crypto::sealed_key_id(to).is_none()
                    && keys
                        .open_str(&aad("outbox.to", *id), to)
                        .is_ok_and(|to| to == phone.as_str())
            })
            .map(|(id, _)| id)
            .collect())
    }

    /// Records that the person's contacts or keyword changed, and says when
    /// to tell them by SMS: now, if nobody told them in the last `window`;
    /// at the end of the window, if they were told within it (one notice
    /// covers every change of the window); None if that notice is already
    /// planned. One statement, so concurrent changes plan one notice.
    pub async fn changes_notice(
        &self,
        person_id: Uuid,
        now: UnixMillis,
        window: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        let sql = "UPDATE people SET changes_notice_at = CASE \
               WHEN changes_notice_at IS NULL OR changes_notice_at <= $2 - $3 THEN $2 \
               ELSE changes_notice_at + $3 END \
             WHERE id = $1 AND (changes_notice_at IS NULL OR changes_notice_at <= $2) \
             RETURNING changes_notice_at";
        let at: Option<Option<UnixMillis>> = db_run!(self.db.writer(), |pool| {
            sqlx::query_scalar(sql)
                .bind(person_id)
                .bind(now)
                .bind(window)
                .fetch_optional(pool)
                .await
        })?;
        Ok(at.flatten())
    }

    // ---- the PIN's lockout --------------------------------------------------

    /// (failures so far, locked until) for the person's PIN.
    pub async fn pin_state(
        &self,
        person_id: Uuid,
    ) -> Result<(i32, Option<UnixMillis>), StoreError> {
        let sql = "SELECT pin_failures, pin_locked_until FROM people WHERE id = $1";
        let state: Option<(i32, Option<UnixMillis>)> = db_run!(self.db.reader(), |pool| {
            sqlx::query_as(sql)
                .bind(person_id)
                .fetch_optional(pool)
                .await
        })?;
        state.ok_or(StoreError::NotFound)
    }
}
