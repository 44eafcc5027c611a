//! The SQL of both backends.
//!
//! SQLite and PostgreSQL share almost every statement here (`$1` placeholders
//! work in both), so the shared [`Backend`] implementation is written once, in
//! a macro instantiated for each pool type. Where the two differ, the macro
//! takes the backend's own statement as an argument.

pub(crate) const DEVICE_COLUMNS: &str = "id, phone_index, phone_enc, language, token_hash, person_id, \
     code_hash, code_expires_at, code_attempts, verified_at, created_at";
macro_rules! person_columns {
    () => {
        "id, phone_index, phone_enc, name_enc, home_state_enc, \
         home_county_enc, keyword_enc, language, pin_hash, created_at, updated_at"
    };
}
pub(crate) const PERSON_COLUMNS: &str = person_columns!();
/// What a person's row is read as: its written columns and the version of
/// its contacts (kept by triggers, never written by Avisa).
pub(crate) const PERSON_READ_COLUMNS: &str = concat!(person_columns!(), ", contacts_version");
pub(crate) const CONTACT_COLUMNS: &str =
    "id, person_id, name_enc, phone_enc, message_enc, language, created_at, updated_at";
pub(crate) const ALERT_COLUMNS: &str = "id, person_id, device_id, idempotency_key, source, \
     practice, state, consulate_id, coverage, created_at, cancelled_at, updated_at";
pub(crate) const LOCATION_COLUMNS: &str = "id, alert_id, location_enc, created_at";
pub(crate) const OUTBOX_COLUMNS: &str = "id, alert_id, parent_id, kind, purpose, contact_id, \
     name_enc, to_enc, body_enc, language, rank, status, reason, attempts, gateway_index, \
     permanent_failures, gateway, provider_id, next_attempt_at, lease_until, expires_at, \
     created_at, sent_at, updated_at";
/// Rows per multi-row INSERT: 24 columns x 400 rows stays under SQLite's
/// 32,766 bound parameters. (Smaller chunks looked faster for accepting alone,
/// but a group commit then holds the single SQLite writer longer and the
/// dispatcher fell behind at 1,000 alerts/s: see BENCHMARKS.md.) Statements
/// built with a varying number of rows are not kept prepared
/// (`persistent(false)`): each row count would be a distinct cached
/// statement, and a large one holds megabytes.
pub(crate) const OUTBOX_CHUNK: usize = 400;

/// A device by its token hash with its person (columns prefixed `p_`), plus
/// `extra` columns.
fn device_and_person_sql(extra: &str) -> String {
    let person_columns = PERSON_READ_COLUMNS
        .split(", ")
        .map(|c| format!("p.{c} AS p_{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let device_columns = DEVICE_COLUMNS
        .split(", ")
        .map(|c| format!("d.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {device_columns}, {person_columns}{extra} FROM devices d \
         LEFT JOIN people p ON p.id = d.person_id WHERE d.token_hash = $1"
    )
}

/// What every phone request reads first; built once, not per request.
pub(crate) static DEVICE_AND_PERSON_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| device_and_person_sql(""));

/// What a press needs of a person's alerts, as two columns: `existing`,
/// the alert the idempotency key ($2) already made, and `recent`, how many
/// they raised since $3. `person` is the SQL that names the person.
fn key_and_recent_columns(person: &str) -> String {
    format!(
        "(SELECT a.id FROM alerts a WHERE a.person_id = {person} \
           AND a.idempotency_key = $2) AS existing, \
         (SELECT COUNT(*) FROM alerts a WHERE a.person_id = {person} \
           AND a.created_at >= $3) AS recent"
    )
}

/// [`key_and_recent_columns`] for the person $1.
pub(crate) static KEY_AND_RECENT_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {}", key_and_recent_columns("$1")));

/// The device and its person, with [`key_and_recent_columns`]: all a press
/// reads before it writes.
pub(crate) static PRESS_LOOKUP_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    device_and_person_sql(&format!(", {}", key_and_recent_columns("d.person_id")))
});

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
/// - `$db`, `$row`: the database and its row type;
/// - `$kind`: its name;
/// - `$lock_person`: a statement that locks a person's row for the rest of a
///   transaction (`FOR UPDATE` on PostgreSQL; SQLite's single writer already
///   serialises write transactions);
/// - `$skip_locked`: the clause that lets concurrent dispatchers claim
///   different rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL; nothing on
///   SQLite, whose claim is one statement on the single writer).
macro_rules! shared_backend {
    ($ty:ty, $db:ty, $row:ty, $kind:literal, $lock_person:literal, $skip_locked:literal) => {
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
                contacts_version: r.try_get("contacts_version")?,
            })
        }

        fn device_and_person_from(r: &$row) -> Result<(DeviceRow, Option<PersonRow>), sqlx::Error> {
            let device = device_from(r)?;
            let person = match r.try_get::<Option<Uuid>, _>("p_id")? {
                Some(id) => Some(PersonRow {
                    id,
                    phone_index: r.try_get("p_phone_index")?,
                    phone_enc: r.try_get("p_phone_enc")?,
                    name_enc: r.try_get("p_name_enc")?,
                    home_state_enc: r.try_get("p_home_state_enc")?,
                    home_county_enc: r.try_get("p_home_county_enc")?,
                    keyword_enc: r.try_get("p_keyword_enc")?,
                    language: r.try_get("p_language")?,
                    pin_hash: r.try_get("p_pin_hash")?,
                    created_at: r.try_get("p_created_at")?,
                    updated_at: r.try_get("p_updated_at")?,
                    contacts_version: r.try_get("p_contacts_version")?,
                }),
                None => None,
            };
            Ok((device, person))
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

        fn alert_from(r: &$row) -> Result<AlertRow, sqlx::Error> {
            Ok(AlertRow {
                id: r.try_get("id")?,
                person_id: r.try_get("person_id")?,
                device_id: r.try_get("device_id")?,
                idempotency_key: r.try_get("idempotency_key")?,
                source: r.try_get("source")?,
                practice: r.try_get("practice")?,
                state: r.try_get("state")?,
                consulate_id: r.try_get("consulate_id")?,
                coverage: r.try_get("coverage")?,
                created_at: r.try_get("created_at")?,
                cancelled_at: r.try_get("cancelled_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        fn location_from(r: &$row) -> Result<LocationRow, sqlx::Error> {
            Ok(LocationRow {
                id: r.try_get("id")?,
                alert_id: r.try_get("alert_id")?,
                location_enc: r.try_get("location_enc")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn outbox_from(r: &$row) -> Result<OutboxRow, sqlx::Error> {
            Ok(OutboxRow {
                id: r.try_get("id")?,
                alert_id: r.try_get("alert_id")?,
                parent_id: r.try_get("parent_id")?,
                kind: r.try_get("kind")?,
                purpose: r.try_get("purpose")?,
                contact_id: r.try_get("contact_id")?,
                name_enc: r.try_get("name_enc")?,
                to_enc: r.try_get("to_enc")?,
                body_enc: r.try_get("body_enc")?,
                language: r.try_get("language")?,
                rank: r.try_get("rank")?,
                status: r.try_get("status")?,
                reason: r.try_get("reason")?,
                attempts: r.try_get("attempts")?,
                gateway_index: r.try_get("gateway_index")?,
                permanent_failures: r.try_get("permanent_failures")?,
                gateway: r.try_get("gateway")?,
                provider_id: r.try_get("provider_id")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                lease_until: r.try_get("lease_until")?,
                expires_at: r.try_get("expires_at")?,
                created_at: r.try_get("created_at")?,
                sent_at: r.try_get("sent_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        /// Leases up to `limit` due messages, by rank then age: the rows
        /// chosen are the rows leased, in one statement.
        async fn claim_in<E>(exec: &mut E, now: UnixMillis, limit: i64, lease_until: UnixMillis) -> Result<Vec<OutboxRow>, StoreError>
        where
            for<'e> &'e mut E: sqlx::Executor<'e, Database = $db>,
        {
            let rows = q!("UPDATE outbox SET status = 'sending', attempts = attempts + 1, \
                             lease_until = $1, updated_at = $2 \
                           WHERE id IN ( \
                             SELECT o.id FROM outbox o \
                             WHERE o.status = 'queued' AND o.next_attempt_at <= $2 \
                               AND (o.parent_id IS NULL OR NOT EXISTS ( \
                                 SELECT 1 FROM outbox p WHERE p.id = o.parent_id \
                                   AND p.status IN ('queued', 'sending'))) \
                             ORDER BY o.rank, o.created_at \
                             LIMIT $3 {}) \
                           RETURNING {OUTBOX_COLUMNS}", $skip_locked)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *exec)
            .await?;
            let mut rows = rows.iter().map(outbox_from).collect::<Result<Vec<_>, _>>()?;
            rows.sort_by_key(|r| (r.rank, r.created_at));
            Ok(rows)
        }

        /// Records send outcomes; returns the alerts whose rows changed.
        async fn apply_in<E>(exec: &mut E, updates: &[OutboxUpdate]) -> Result<Vec<Uuid>, StoreError>
        where
            for<'e> &'e mut E: sqlx::Executor<'e, Database = $db>,
        {
            let mut touched = Vec::new();
            // Messages the gateway took are the bulk: one statement for all
            // of them (a round trip each would dominate the dispatcher).
            let sent: Vec<(&Uuid, &String, &String, &UnixMillis)> = updates
                .iter()
                .filter_map(|u| match u {
                    OutboxUpdate::Sent { id, gateway, provider_id, at } => Some((id, gateway, provider_id, at)),
                    _ => None,
                })
                .collect();
            // One statement per chunk, joined to a VALUES list (3 parameters a
            // row): a CASE per column would cost rows x rows comparisons.
            for chunk in sent.chunks(OUTBOX_CHUNK) {
                let latest = chunk.iter().map(|s| *s.3).max().unwrap_or_default();
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE outbox SET status = CASE WHEN outbox.status = 'sending' THEN 'sent' ELSE outbox.status END, \
                     gateway = v.column2, provider_id = v.column3, lease_until = NULL, reason = NULL, sent_at = ",
                );
                b.push_bind(latest);
                b.push(", updated_at = ").push_bind(latest);
                b.push(" FROM (");
                b.push_values(chunk, |mut v, (id, gateway, provider, _)| {
                    v.push_bind(**id).push_bind((*gateway).clone()).push_bind((*provider).clone());
                });
                b.push(") AS v WHERE outbox.id = v.column1 RETURNING outbox.alert_id");
                for row in b.build().persistent(false).fetch_all(&mut *exec).await? {
                    if let Some(alert) = row.try_get::<Option<Uuid>, _>("alert_id")? {
                        touched.push(alert);
                    }
                }
            }
            for u in updates {
                let row = match u {
                    OutboxUpdate::Sent { .. } => None,
                    OutboxUpdate::Retry { id, next_attempt_at, gateway_index, permanent_failures, reason, at } => sqlx::query(
                        "UPDATE outbox SET status = 'queued', next_attempt_at = $1, gateway_index = $2, \
                         permanent_failures = $3, reason = $4, lease_until = NULL, updated_at = $5 \
                         WHERE id = $6 AND status = 'sending' RETURNING alert_id",
                    )
                    .bind(next_attempt_at)
                    .bind(gateway_index)
                    .bind(permanent_failures)
                    .bind(reason)
                    .bind(at)
                    .bind(id)
                    .fetch_optional(&mut *exec)
                    .await?,
                    OutboxUpdate::Failed { id, reason, at } => sqlx::query(
                        "UPDATE outbox SET status = 'failed', reason = $1, lease_until = NULL, updated_at = $2 \
                         WHERE id = $3 AND status = 'sending' RETURNING alert_id",
                    )
                    .bind(reason)
                    .bind(at)
                    .bind(id)
                    .fetch_optional(&mut *exec)
                    .await?,
                    OutboxUpdate::Expired { id, at } => sqlx::query(
                        "UPDATE outbox SET status = 'expired', reason = 'not sent within its validity', \
                         lease_until = NULL, updated_at = $1 \
                         WHERE id = $2 AND status IN ('queued', 'sending') RETURNING alert_id",
                    )
                    .bind(at)
                    .bind(id)
                    .fetch_optional(&mut *exec)
                    .await?,
                    OutboxUpdate::Withdrawn { id, reason, at } => sqlx::query(
                        "UPDATE outbox SET status = 'withdrawn', reason = $1, lease_until = NULL, updated_at = $2 \
                         WHERE id = $3 AND status IN ('queued', 'sending') RETURNING alert_id",
                    )
                    .bind(reason)
                    .bind(at)
                    .bind(id)
                    .fetch_optional(&mut *exec)
                    .await?,
                    OutboxUpdate::Release { id, next_attempt_at, at } => sqlx::query(
                        "UPDATE outbox SET status = 'queued', next_attempt_at = $1, lease_until = NULL, \
                         attempts = attempts - 1, updated_at = $2 \
                         WHERE id = $3 AND status = 'sending' RETURNING alert_id",
                    )
                    .bind(next_attempt_at)
                    .bind(at)
                    .bind(id)
                    .fetch_optional(&mut *exec)
                    .await?,
                };
                if let Some(row) = row
                    && let Some(alert) = row.try_get::<Option<Uuid>, _>("alert_id")?
                {
                    touched.push(alert);
                }
            }
            touched.sort();
            touched.dedup();
            Ok(touched)
        }

        /// Multi-row INSERT of outbox rows, in chunks.
        async fn insert_outbox<'c, E>(exec: &mut E, rows: &[OutboxRow]) -> Result<(), sqlx::Error>
        where
            for<'e> &'e mut E: sqlx::Executor<'e, Database = $db>,
        {
            for chunk in rows.chunks(OUTBOX_CHUNK) {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO outbox ({OUTBOX_COLUMNS}) "));
                b.push_values(chunk, |mut v, o| {
                    v.push_bind(o.id)
                        .push_bind(o.alert_id)
                        .push_bind(o.parent_id)
                        .push_bind(o.kind.clone())
                        .push_bind(o.purpose.clone())
                        .push_bind(o.contact_id)
                        .push_bind(o.name_enc.clone())
                        .push_bind(o.to_enc.clone())
                        .push_bind(o.body_enc.clone())
                        .push_bind(o.language.clone())
                        .push_bind(o.rank)
                        .push_bind(o.status.clone())
                        .push_bind(o.reason.clone())
                        .push_bind(o.attempts)
                        .push_bind(o.gateway_index)
                        .push_bind(o.permanent_failures)
                        .push_bind(o.gateway.clone())
                        .push_bind(o.provider_id.clone())
                        .push_bind(o.next_attempt_at)
                        .push_bind(o.lease_until)
                        .push_bind(o.expires_at)
                        .push_bind(o.created_at)
                        .push_bind(o.sent_at)
                        .push_bind(o.updated_at);
                });
                b.build().persistent(false).execute(&mut *exec).await?;
            }
            Ok(())
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

            async fn device_and_person_by_token(
                &self,
                token_hash: &[u8],
            ) -> Result<Option<(DeviceRow, Option<PersonRow>)>, StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(DEVICE_AND_PERSON_SQL.as_str()))
                    .bind(token_hash)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(device_and_person_from).transpose()?)
            }

            async fn press_lookup(
                &self,
                token_hash: &[u8],
                key: &str,
                since: UnixMillis,
            ) -> Result<Option<PressRow>, StoreError> {
                // The device, its person, and what the press needs to know of
                // the person's alerts (the key's alert, the recent count): one
                // round trip.
                let row = sqlx::query(sqlx::AssertSqlSafe(PRESS_LOOKUP_SQL.as_str()))
                .bind(token_hash)
                .bind(key)
                .bind(since)
                .fetch_optional(self.reader())
                .await?;
                let Some(r) = row else { return Ok(None) };
                let (device, person) = device_and_person_from(&r)?;
                Ok(Some(PressRow {
                    device,
                    person,
                    existing: r.try_get("existing")?,
                    recent: r.try_get("recent")?,
                }))
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
                let row = q!("SELECT {PERSON_READ_COLUMNS} FROM people WHERE id = $1")
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

            async fn alerts_insert(&self, batch: &[AlertInsert]) -> Result<Vec<Inserted>, StoreError> {
                if batch.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.writer().begin().await?;
                let mut created = std::collections::HashSet::new();
                // 12 columns x 1,000 alerts stays under every bind limit.
                for chunk in batch.chunks(1000) {
                    let mut b = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO alerts ({ALERT_COLUMNS}) "));
                    b.push_values(chunk, |mut v, a| {
                        let a = &a.alert;
                        v.push_bind(a.id)
                            .push_bind(a.person_id)
                            .push_bind(a.device_id)
                            .push_bind(a.idempotency_key.clone())
                            .push_bind(a.source.clone())
                            .push_bind(a.practice)
                            .push_bind(a.state.clone())
                            .push_bind(a.consulate_id.clone())
                            .push_bind(a.coverage.clone())
                            .push_bind(a.created_at)
                            .push_bind(a.cancelled_at)
                            .push_bind(a.updated_at);
                    });
                    // A reused key inserts nothing: the first alert stands.
                    b.push(" ON CONFLICT (person_id, idempotency_key) DO NOTHING RETURNING id");
                    for row in b.build().persistent(false).fetch_all(&mut *tx).await? {
                        created.insert(row.try_get::<Uuid, _>("id")?);
                    }
                }
                let mut results = Vec::with_capacity(batch.len());
                let mut locations = Vec::new();
                let mut outbox = Vec::new();
                for a in batch {
                    if created.contains(&a.alert.id) {
                        results.push(Inserted::Created(a.alert.id));
                        locations.extend(a.location.iter());
                        outbox.extend(a.outbox.iter().cloned());
                    } else {
                        let id: Uuid = sqlx::query(
                            "SELECT id FROM alerts WHERE person_id = $1 AND idempotency_key = $2",
                        )
                        .bind(a.alert.person_id)
                        .bind(&a.alert.idempotency_key)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("id")?;
                        results.push(Inserted::Existing(id));
                    }
                }
                for chunk in locations.chunks(1000) {
                    let mut b = sqlx::QueryBuilder::<$db>::new(format!("INSERT INTO alert_locations ({LOCATION_COLUMNS}) "));
                    b.push_values(chunk, |mut v, l| {
                        v.push_bind(l.id)
                            .push_bind(l.alert_id)
                            .push_bind(l.location_enc.clone())
                            .push_bind(l.created_at);
                    });
                    b.build().persistent(false).execute(&mut *tx).await?;
                }
                insert_outbox(&mut *tx, &outbox).await?;
                tx.commit().await?;
                Ok(results)
            }

            async fn alert_get(&self, id: Uuid) -> Result<Option<AlertRow>, StoreError> {
                let row = q!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(alert_from).transpose()?)
            }

            async fn alert_key_and_recent(&self, person_id: Uuid, key: &str, since: UnixMillis) -> Result<(Option<Uuid>, i64), StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(KEY_AND_RECENT_SQL.as_str()))
                .bind(person_id)
                .bind(key)
                .bind(since)
                .fetch_one(self.reader())
                .await?;
                Ok((row.try_get("existing")?, row.try_get("recent")?))
            }

            async fn alerts_active_count(&self, person_id: Uuid) -> Result<i64, StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM alerts WHERE person_id = $1 AND state = 'active' AND practice = $2",
                )
                .bind(person_id)
                .bind(false)
                .fetch_one(self.reader())
                .await?;
                Ok(row.try_get("n")?)
            }

            async fn alert_outbox(&self, alert_id: Uuid) -> Result<Vec<OutboxRow>, StoreError> {
                let rows = q!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE alert_id = $1 ORDER BY rank, created_at, id")
                    .bind(alert_id)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.iter().map(outbox_from).collect::<Result<_, _>>()?)
            }

            async fn alert_latest_location(&self, alert_id: Uuid) -> Result<Option<LocationRow>, StoreError> {
                let row = q!("SELECT {LOCATION_COLUMNS} FROM alert_locations WHERE alert_id = $1 \
                              ORDER BY created_at DESC, id DESC LIMIT 1")
                .bind(alert_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.as_ref().map(location_from).transpose()?)
            }

            async fn person_latest_location(&self, person_id: Uuid) -> Result<Option<LocationRow>, StoreError> {
                let row = sqlx::query(
                    "SELECT l.id, l.alert_id, l.location_enc, l.created_at FROM alert_locations l \
                     JOIN alerts a ON a.id = l.alert_id WHERE a.person_id = $1 \
                     ORDER BY l.created_at DESC, l.id DESC LIMIT 1",
                )
                .bind(person_id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.as_ref().map(location_from).transpose()?)
            }

            async fn location_insert(&self, l: &LocationRow) -> Result<(), StoreError> {
                q!("INSERT INTO alert_locations ({LOCATION_COLUMNS}) VALUES ($1, $2, $3, $4)")
                    .bind(l.id)
                    .bind(l.alert_id)
                    .bind(&l.location_enc)
                    .bind(l.created_at)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn alert_cancel(
                &self,
                alert_id: Uuid,
                at: UnixMillis,
                follow_up: &(dyn for<'r> Fn(&'r [OutboxRow]) -> Result<Vec<OutboxRow>, StoreError> + Sync),
            ) -> Result<Option<u64>, StoreError> {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query(
                    "UPDATE alerts SET state = 'cancelled', cancelled_at = $1, updated_at = $1 \
                     WHERE id = $2 AND state = 'active'",
                )
                .bind(at)
                .bind(alert_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                let withdrawn = sqlx::query(
                    "UPDATE outbox SET status = 'withdrawn', reason = 'cancelled', updated_at = $1 \
                     WHERE alert_id = $2 AND purpose = 'alert' AND status = 'queued'",
                )
                .bind(at)
                .bind(alert_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let reached = q!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE alert_id = $1 AND purpose = 'alert' \
                                  AND status IN ('sending', 'sent', 'delivered') ORDER BY rank, created_at")
                .bind(alert_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(outbox_from)
                .collect::<Result<Vec<_>, _>>()?;
                let follow = follow_up(&reached)?;
                insert_outbox(&mut *tx, &follow).await?;
                tx.commit().await?;
                Ok(Some(withdrawn))
            }

            async fn person_pin_failed(
                &self,
                id: Uuid,
                max: i32,
                lock_until: UnixMillis,
            ) -> Result<(i32, Option<UnixMillis>), StoreError> {
                let row = sqlx::query(
                    "UPDATE people SET \
                       pin_locked_until = CASE WHEN pin_failures + 1 >= $1 THEN $2 ELSE pin_locked_until END, \
                       pin_failures = CASE WHEN pin_failures + 1 >= $1 THEN 0 ELSE pin_failures + 1 END \
                     WHERE id = $3 RETURNING pin_failures, pin_locked_until",
                )
                .bind(max)
                .bind(lock_until)
                .bind(id)
                .fetch_one(self.writer())
                .await?;
                Ok((row.try_get("pin_failures")?, row.try_get("pin_locked_until")?))
            }

            async fn person_pin_reset(&self, id: Uuid) -> Result<(), StoreError> {
                sqlx::query("UPDATE people SET pin_failures = 0, pin_locked_until = NULL WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn person_pin_state(&self, id: Uuid) -> Result<(i32, Option<UnixMillis>), StoreError> {
                let row = sqlx::query("SELECT pin_failures, pin_locked_until FROM people WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok((row.try_get("pin_failures")?, row.try_get("pin_locked_until")?))
            }

            async fn person_by_phone_index(&self, index: &[u8]) -> Result<Option<PersonRow>, StoreError> {
                let row = q!("SELECT {PERSON_READ_COLUMNS} FROM people WHERE phone_index = $1")
                    .bind(index)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(person_from).transpose()?)
            }

            async fn outbox_insert(&self, rows: &[OutboxRow]) -> Result<(), StoreError> {
                let mut tx = self.writer().begin().await?;
                insert_outbox(&mut *tx, rows).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn outbox_claim(
                &self,
                now: UnixMillis,
                limit: i64,
                lease_until: UnixMillis,
            ) -> Result<Vec<OutboxRow>, StoreError> {
                let mut conn = self.writer().acquire().await?;
                claim_in(&mut *conn, now, limit, lease_until).await
            }

            async fn outbox_statuses(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>, StoreError> {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(row) = sqlx::query("SELECT status FROM outbox WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?
                    {
                        out.push((*id, row.try_get("status")?));
                    }
                }
                Ok(out)
            }

            async fn outbox_apply(&self, updates: &[OutboxUpdate]) -> Result<Vec<Uuid>, StoreError> {
                if updates.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.writer().begin().await?;
                let touched = apply_in(&mut *tx, updates).await?;
                tx.commit().await?;
                Ok(touched)
            }

            async fn outbox_apply_then_claim(
                &self,
                updates: &[OutboxUpdate],
                now: UnixMillis,
                limit: i64,
                lease_until: UnixMillis,
            ) -> Result<(Vec<Uuid>, Vec<OutboxRow>), StoreError> {
                // One transaction, one commit on the writer, for the end of a
                // round and the start of the next.
                let mut tx = self.writer().begin().await?;
                let touched = apply_in(&mut *tx, updates).await?;
                let claimed = claim_in(&mut *tx, now, limit, lease_until).await?;
                tx.commit().await?;
                Ok((touched, claimed))
            }

            async fn outbox_reclaim(&self, now: UnixMillis) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "UPDATE outbox SET status = 'queued', lease_until = NULL, updated_at = $1 \
                     WHERE status = 'sending' AND lease_until <= $1",
                )
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected())
            }

            async fn outbox_expire(&self, now: UnixMillis) -> Result<Vec<Uuid>, StoreError> {
                let rows = sqlx::query(
                    "UPDATE outbox SET status = 'expired', reason = 'not sent within its validity', \
                     updated_at = $1 WHERE status = 'queued' AND expires_at <= $1 RETURNING alert_id",
                )
                .bind(now)
                .fetch_all(self.writer())
                .await?;
                let mut alerts = Vec::new();
                for r in rows {
                    if let Some(a) = r.try_get::<Option<Uuid>, _>("alert_id")? {
                        alerts.push(a);
                    }
                }
                alerts.sort();
                alerts.dedup();
                Ok(alerts)
            }

            async fn outbox_receipt(
                &self,
                id: Uuid,
                status: &str,
                from: &[&str],
                reason: Option<&str>,
                at: UnixMillis,
            ) -> Result<Option<Option<Uuid>>, StoreError> {
                // `from` holds at most four known statuses: spelled out as binds.
                let mut b = sqlx::QueryBuilder::<$db>::new("UPDATE outbox SET status = ");
                b.push_bind(status.to_string());
                b.push(", reason = COALESCE(");
                b.push_bind(reason.map(str::to_string));
                b.push(", reason), updated_at = ");
                b.push_bind(at);
                b.push(" WHERE id = ");
                b.push_bind(id);
                b.push(" AND status IN (");
                let mut list = b.separated(", ");
                for f in from {
                    list.push_bind(f.to_string());
                }
                b.push(") RETURNING alert_id");
                let row = b.build().persistent(false).fetch_optional(self.writer()).await?;
                Ok(match row {
                    Some(r) => Some(r.try_get::<Option<Uuid>, _>("alert_id")?),
                    None => None,
                })
            }

            async fn outbox_get(&self, id: Uuid) -> Result<Option<OutboxRow>, StoreError> {
                let row = q!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.as_ref().map(outbox_from).transpose()?)
            }
        }
    };
}

pub(crate) use {q, shared_backend};
