-- The duress PIN (one SQL for both backends: BIGINT and TEXT mean the same
-- to SQLite and PostgreSQL).
--
-- people.duress_hash: argon2id of the duress PIN, or of a random secret when
-- the person set none, so that neither the database nor the time a PIN check
-- takes tells whether one is set. NULL only for people who have set no PIN
-- since this migration.
ALTER TABLE people ADD COLUMN duress_hash TEXT;

-- alerts.duress_at: when the alert was "cancelled" with the duress PIN. The
-- alert stays active for the consulate; the person's phone shows it
-- cancelled.
ALTER TABLE alerts ADD COLUMN duress_at BIGINT;
