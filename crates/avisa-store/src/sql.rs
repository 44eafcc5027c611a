//! The SQL of both backends.
//!
//! SQLite and PostgreSQL share almost every statement here (`$1` placeholders
//! work in both), so the shared [`Backend`] implementation is written once, in
//! a macro instantiated for each pool type. Where the two differ, the macro
//! takes the backend's own statement as an argument.

pub(crate) const DEVICE_COLUMNS: &str = "id, phone_index, phone_enc, language, token_hash, person_id, \
     code_hash, code_expires_at, code_attempts, verified_at, created_at";
pub(crate) const PERSON_COLUMNS: &str = "id, phone_index, phone_enc, name_enc, home_state_enc, \
     home_county_enc, keyword_enc, language, pin_hash, created_at, updated_at";
pub(crate) const CONTACT_COLUMNS: &str =
    "id, person_id, name_enc, phone_enc, message_enc, language, created_at, updated_at";

/// Statements assembled once from the column lists (`sqlx::query` takes only
/// `'static` text unless told the text is safe: these are constants).
macro_rules! q {
    ($($part:expr),+ $(,)?) => {
        sqlx::query(sqlx::AssertSqlSafe(format!($($part),+)))
    };
}

/// The [`Backend`] implementation shared by both databases.
///
/// - `$ty`: the backend struct, with `writer()` and `reader()` pools;
/// - `$row`: the database's row type;
/// - `$kind`: its name;
/// - `$lock_person`: a statement that locks a person's row for the rest of a
///   transaction (`FOR UPDATE` on PostgreSQL; SQLite's single writer already
///   serialises write transactions).
macro_rules! shared_backend {
    ($ty:ty, $row:ty, $kind:literal, $lock_person:literal) => {
        // Rows decode the same way from either database.
        fn device_from(r: &$row) -> Result<DeviceRow, sqlx::Error> {
            Ok(DeviceRow {
                id: r.try_get("id")?,
                phone_index: r.try_get("phone_index")?,
                phone_enc: r.try_get("phone_enc")?,
                language: r.try_get("language")?,
                token_hash: r.try_get("token_hash")?,
                person_id: r.try_get("person_id")?,
                code_hash: r.try_get("code_hash")?,
                code_expires_at: r.try_get("code_expires_at")?,
                code_attempts: r.try_get("code_attempts")?,
                verified_at: r.try_get("verified_at")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn person_from(r: &$row) -> Result<PersonRow, sqlx::Error> {
            Ok(PersonRow {
                id: r.try_get("id")?,
                phone_index: r.try_get("phone_index")?,
                phone_enc: r.try_get("phone_enc")?,
                name_enc: r.try_get("name_enc")?,
                home_state_enc: r.try_get("home_state_enc")?,
                home_county_enc: r.try_get("home_county_enc")?,
                keyword_enc: r.try_get("keyword_enc")?,
                language: r.try_get("language")?,
                pin_hash: r.try_get("pin_hash")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn contact_from(r: &$row) -> Result<ContactRow, sqlx::Error> {
            Ok(ContactRow {
                id: r.try_get("id")?,
                person_id: r.try_get("person_id")?,
                name_enc: r.try_get("name_enc")?,
                phone_enc: r.try_get("phone_enc")?,
                message_enc: r.try_get("message_enc")?,
                language: r.try_get("language")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        #[async_trait]
        impl Backend for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                self.migrator().run(self.writer()).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn close(&self) {
                self.reader().close().await;
                self.writer().close().await;
            }

            async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn device_insert(&self, d: &DeviceRow) -> Result<(), StoreError> {
                q!("INSERT INTO devices ({DEVICE_COLUMNS}) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(d.id)
                .bind(&d.phone_index)
                .bind(&d.phone_enc)
                .bind(&d.language)
                .bind(&d.token_hash)
                .bind(d.person_id)
                .bind(&d.code_hash)
                .bind(d.code_expires_at)
                .bind(d.code_attempts)
                .bind(d.verified_at)
                .bind(d.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn device_by_token(
                &self,
                token_hash: &[u8],
            ) -> Result<Option<DeviceRow>, StoreError> {
                let row = q!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(device_from).transpose()?)
            }

            async fn devices_registered_since(
                &self,
                phone_index: &[u8],
                since: UnixMillis,
            ) -> Result<i64, StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM devices WHERE phone_index = $1 AND created_at >= $2",
                )
                .bind(phone_index)
                .bind(since)
                .fetch_one(self.reader())
                .await?;
                Ok(row.try_get("n")?)
            }

            async fn device_take_attempt(
                &self,
                id: Uuid,
                now: UnixMillis,
                max_attempts: i32,
            ) -> Result<Option<DeviceRow>, StoreError> {
                // One statement, so two guesses racing each other can never
                // both use the last attempt.
                let row = q!("UPDATE devices SET code_attempts = code_attempts + 1 \
                    WHERE id = $1 AND code_hash IS NOT NULL AND code_expires_at > $2 \
                      AND code_attempts < $3 \
                    RETURNING {DEVICE_COLUMNS}")
                .bind(id)
                .bind(now)
                .bind(max_attempts)
                .fetch_optional(self.writer())
                .await?;
                Ok(row.as_ref().map(device_from).transpose()?)
            }

            async fn device_verify(
                &self,
                device_id: Uuid,
                p: &PersonRow,
                now: UnixMillis,
            ) -> Result<Uuid, StoreError> {
                let mut tx = self.writer().begin().await?;
                q!("INSERT INTO people ({PERSON_COLUMNS}) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                    ON CONFLICT (phone_index) DO NOTHING")
                .bind(p.id)
                .bind(&p.phone_index)
                .bind(&p.phone_enc)
                .bind(&p.name_enc)
                .bind(&p.home_state_enc)
                .bind(&p.home_county_enc)
                .bind(&p.keyword_enc)
                .bind(&p.language)
                .bind(&p.pin_hash)
                .bind(p.created_at)
                .bind(p.updated_at)
                .execute(&mut *tx)
                .await?;
                let person_id: Uuid = sqlx::query("SELECT id FROM people WHERE phone_index = $1")
                    .bind(&p.phone_index)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("id")?;
                let updated = sqlx::query(
                    "UPDATE devices SET person_id = $1, verified_at = $2, code_hash = NULL, \
                     code_expires_at = NULL WHERE id = $3",
                )
                .bind(person_id)
                .bind(now)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                // Abandoned registrations of the same phone hold nothing useful.
                sqlx::query(
                    "DELETE FROM devices WHERE phone_index = $1 AND person_id IS NULL AND id <> $2",
                )
                .bind(&p.phone_index)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(person_id)
            }

            async fn person_get(&self, id: Uuid) -> Result<Option<PersonRow>, StoreError> {
                let row = q!("SELECT {PERSON_COLUMNS} FROM people WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(person_from).transpose()?)
            }

            async fn person_update_profile(&self, p: &PersonRow) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE people SET name_enc = $1, home_state_enc = $2, home_county_enc = $3, \
                     keyword_enc = $4, language = $5, pin_hash = $6, updated_at = $7 WHERE id = $8",
                )
                .bind(&p.name_enc)
                .bind(&p.home_state_enc)
                .bind(&p.home_county_enc)
                .bind(&p.keyword_enc)
                .bind(&p.language)
                .bind(&p.pin_hash)
                .bind(p.updated_at)
                .bind(p.id)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn person_delete(&self, id: Uuid) -> Result<bool, StoreError> {
                // Devices and contacts go with it (ON DELETE CASCADE).
                let done = sqlx::query("DELETE FROM people WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn contacts_list(&self, person_id: Uuid) -> Result<Vec<ContactRow>, StoreError> {
                let rows = q!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE person_id = $1 \
                               ORDER BY created_at, id")
                .bind(person_id)
                .fetch_all(self.reader())
                .await?;
                Ok(rows.iter().map(contact_from).collect::<Result<_, _>>()?)
            }

            async fn contact_get(
                &self,
                person_id: Uuid,
                id: Uuid,
            ) -> Result<Option<ContactRow>, StoreError> {
                let row =
                    q!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE person_id = $1 AND id = $2")
                        .bind(person_id)
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.as_ref().map(contact_from).transpose()?)
            }

            async fn contact_insert(&self, c: &ContactRow, max: i64) -> Result<(), StoreError> {
                let mut tx = self.writer().begin().await?;
                // Serialise concurrent inserts for one person, so the limit holds.
                sqlx::query($lock_person).bind(c.person_id).execute(&mut *tx).await?;
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM contacts WHERE person_id = $1")
                    .bind(c.person_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if n >= max {
                    return Err(StoreError::LimitReached);
                }
                q!("INSERT INTO contacts ({CONTACT_COLUMNS}) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(c.id)
                .bind(c.person_id)
                .bind(&c.name_enc)
                .bind(&c.phone_enc)
                .bind(&c.message_enc)
                .bind(&c.language)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn contact_update(&self, c: &ContactRow) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE contacts SET name_enc = $1, phone_enc = $2, message_enc = $3, \
                     language = $4, updated_at = $5 WHERE person_id = $6 AND id = $7",
                )
                .bind(&c.name_enc)
                .bind(&c.phone_enc)
                .bind(&c.message_enc)
                .bind(&c.language)
                .bind(c.updated_at)
                .bind(c.person_id)
                .bind(c.id)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn contact_delete(&self, person_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM contacts WHERE person_id = $1 AND id = $2")
                    .bind(person_id)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use {q, shared_backend};
