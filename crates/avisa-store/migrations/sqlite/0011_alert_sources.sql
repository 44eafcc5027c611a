-- Alerts raised by the voice line ('call') and by a check-in timer
-- ('checkin'), and the number an alert was raised from when it is not the
-- person's own (the voice line, or "AYUDA <number> <PIN>" by SMS from another
-- phone), sealed like every personal field. Live location: the "nueva
-- ubicacion" SMS to contacts who chose them (outbox purpose 'update',
-- contacts.location_updates), and trail points kept but flagged when they
-- are too far from the one before for the time between them.
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt
-- (sqlite.org/lang_altertable.html, "other kinds of table schema changes").
-- This migration runs outside sqlx's transaction because foreign keys must
-- be off while `alerts` is dropped (with them on, the drop would cascade to
-- every message, location and case event) and that pragma is a no-op inside
-- a transaction; its own transaction below makes the rebuild all or nothing.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE alerts_v11 (
    id              BLOB PRIMARY KEY,
    person_id       BLOB NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    device_id       BLOB,
    idempotency_key TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('app', 'sms', 'call', 'checkin')),
    practice        BOOLEAN NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'cancelled')),
    consulate_id    TEXT,
    coverage        TEXT NOT NULL CHECK (coverage IN ('nearest', 'home_county', 'home_state', 'outside', 'none')),
    created_at      INTEGER NOT NULL,
    cancelled_at    INTEGER,
    updated_at      INTEGER NOT NULL,
    case_state      TEXT NOT NULL DEFAULT 'new',
    assigned_to     BLOB,
    acknowledged_at INTEGER,
    acknowledged_by BLOB,
    escalated_at    INTEGER,
    resolved_at     INTEGER,
    outcome         TEXT,
    outcome_detail_enc BLOB,
    duress_at       BIGINT,
    caller_enc      BLOB,
    UNIQUE (person_id, idempotency_key)
);
INSERT INTO alerts_v11 (id, person_id, device_id, idempotency_key, source, practice, state,
    consulate_id, coverage, created_at, cancelled_at, updated_at, case_state, assigned_to,
    acknowledged_at, acknowledged_by, escalated_at, resolved_at, outcome, outcome_detail_enc,
    duress_at)
SELECT id, person_id, device_id, idempotency_key, source, practice, state,
    consulate_id, coverage, created_at, cancelled_at, updated_at, case_state, assigned_to,
    acknowledged_at, acknowledged_by, escalated_at, resolved_at, outcome, outcome_detail_enc,
    duress_at
FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_v11 RENAME TO alerts;
CREATE INDEX alerts_by_person ON alerts (person_id, created_at);
CREATE INDEX alerts_by_consulate ON alerts (consulate_id, created_at);
CREATE INDEX alerts_unacknowledged ON alerts (created_at) WHERE case_state = 'new' AND escalated_at IS NULL;
CREATE INDEX alerts_recent ON alerts (person_id, practice, state, created_at);

CREATE TABLE outbox_v11 (
    id                 BLOB PRIMARY KEY,
    alert_id           BLOB REFERENCES alerts (id) ON DELETE CASCADE,
    parent_id          BLOB,
    kind               TEXT NOT NULL CHECK (kind IN ('contact', 'self', 'consulate', 'verification', 'reply')),
    purpose            TEXT NOT NULL CHECK (purpose IN ('alert', 'safe', 'code', 'reply', 'update')),
    contact_id         BLOB,
    name_enc           BLOB,
    to_enc             BLOB NOT NULL,
    body_enc           BLOB NOT NULL,
    language           TEXT NOT NULL,
    rank               INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'expired', 'withdrawn')),
    reason             TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    gateway_index      INTEGER NOT NULL DEFAULT 0,
    permanent_failures INTEGER NOT NULL DEFAULT 0,
    gateway            TEXT,
    provider_id        TEXT,
    next_attempt_at    INTEGER NOT NULL,
    lease_until        INTEGER,
    expires_at         INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    sent_at            INTEGER,
    updated_at         INTEGER NOT NULL
);
INSERT INTO outbox_v11 SELECT id, alert_id, parent_id, kind, purpose, contact_id, name_enc,
    to_enc, body_enc, language, rank, status, reason, attempts, gateway_index,
    permanent_failures, gateway, provider_id, next_attempt_at, lease_until, expires_at,
    created_at, sent_at, updated_at
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v11 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (rank, created_at) WHERE status = 'queued';
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE status = 'sending';
CREATE INDEX outbox_by_alert ON outbox (alert_id);
CREATE INDEX outbox_by_parent ON outbox (parent_id) WHERE parent_id IS NOT NULL;

ALTER TABLE contacts ADD COLUMN location_updates BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alert_locations ADD COLUMN implausible BOOLEAN NOT NULL DEFAULT FALSE;
COMMIT;
PRAGMA foreign_keys = ON;
