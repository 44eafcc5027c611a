-- The consulate console: staff, sessions, case handling, timeline, audit.

-- Consular staff. Usernames are work identities, not the people Avisa
-- protects; passwords are argon2id, peppered with a key-derived secret.
CREATE TABLE staff (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    consulate_id  TEXT NOT NULL,            -- a directory office id, or 'ciam'
    role          TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Console sessions: the cookie holds a random token, stored only hashed.
CREATE TABLE staff_sessions (
    token_hash   BYTEA PRIMARY KEY,
    staff_id     UUID NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff_id);

-- The case each real alert becomes at its consulate.
ALTER TABLE alerts ADD COLUMN case_state TEXT NOT NULL DEFAULT 'new';
ALTER TABLE alerts ADD COLUMN assigned_to UUID;
ALTER TABLE alerts ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE alerts ADD COLUMN acknowledged_by UUID;
ALTER TABLE alerts ADD COLUMN escalated_at BIGINT;
ALTER TABLE alerts ADD COLUMN resolved_at BIGINT;
ALTER TABLE alerts ADD COLUMN outcome TEXT;
ALTER TABLE alerts ADD COLUMN outcome_detail_enc BYTEA;   -- e.g. the facility: sealed
CREATE INDEX alerts_unacknowledged ON alerts (created_at) WHERE case_state = 'new' AND escalated_at IS NULL;

-- Everything that happened to a case, for its timeline. Notes are sealed.
CREATE TABLE alert_events (
    id         UUID PRIMARY KEY,
    alert_id   UUID NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    staff_id   UUID,
    kind       TEXT NOT NULL,
    detail_enc BYTEA
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, at);

-- Who looked at or did what, when. Append-only: the trigger refuses any
-- change or deletion. No personal data: ids and action names only.
CREATE TABLE audit_log (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    staff_id       UUID,
    staff_username TEXT NOT NULL,
    consulate_id   TEXT NOT NULL,
    alert_id       UUID,
    action         TEXT NOT NULL,
    detail         TEXT
);
CREATE INDEX audit_by_alert ON audit_log (alert_id, at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
