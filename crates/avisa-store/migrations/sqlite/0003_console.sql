-- The consulate console: staff, sessions, case handling, timeline, audit.

-- Consular staff. Usernames are work identities, not the people Avisa
-- protects; passwords are argon2id, peppered with a key-derived secret.
CREATE TABLE staff (
    id            BLOB PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    consulate_id  TEXT NOT NULL,            -- a directory office id, or 'ciam'
    role          TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- Console sessions: the cookie holds a random token, stored only hashed.
CREATE TABLE staff_sessions (
    token_hash   BLOB PRIMARY KEY,
    staff_id     BLOB NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff_id);

-- The case each real alert becomes at its consulate.
ALTER TABLE alerts ADD COLUMN case_state TEXT NOT NULL DEFAULT 'new';
ALTER TABLE alerts ADD COLUMN assigned_to BLOB;
ALTER TABLE alerts ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE alerts ADD COLUMN acknowledged_by BLOB;
ALTER TABLE alerts ADD COLUMN escalated_at INTEGER;
ALTER TABLE alerts ADD COLUMN resolved_at INTEGER;
ALTER TABLE alerts ADD COLUMN outcome TEXT;
ALTER TABLE alerts ADD COLUMN outcome_detail_enc BLOB;    -- e.g. the facility: sealed
CREATE INDEX alerts_unacknowledged ON alerts (created_at) WHERE case_state = 'new' AND escalated_at IS NULL;

-- Everything that happened to a case, for its timeline. Notes are sealed.
CREATE TABLE alert_events (
    id         BLOB PRIMARY KEY,
    alert_id   BLOB NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    staff_id   BLOB,
    kind       TEXT NOT NULL,
    detail_enc BLOB
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, at);

-- Who looked at or did what, when. Append-only: the triggers refuse any
-- change or deletion. No personal data: ids and action names only.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    staff_id       BLOB,
    staff_username TEXT NOT NULL,
    consulate_id   TEXT NOT NULL,
    alert_id       BLOB,
    action         TEXT NOT NULL,
    detail         TEXT
);
CREATE INDEX audit_by_alert ON audit_log (alert_id, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
