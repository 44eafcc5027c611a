-- Alerts, their location trail, and the outbox of every SMS owed.

-- Wrong cancel PINs: 5 in a row lock cancelling for 15 minutes.
ALTER TABLE people ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN pin_locked_until INTEGER;

CREATE TABLE alerts (
    id              BLOB PRIMARY KEY,
    person_id       BLOB NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    device_id       BLOB,                   -- NULL when raised by SMS keyword
    -- Made by the client; the same key never creates a second alert.
    idempotency_key TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('app', 'sms')),
    practice        BOOLEAN NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'cancelled')),
    consulate_id    TEXT,                   -- directory office id; NULL outside coverage
    coverage        TEXT NOT NULL CHECK (coverage IN ('nearest', 'home_county', 'home_state', 'outside', 'none')),
    created_at      INTEGER NOT NULL,
    cancelled_at    INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (person_id, idempotency_key)
);
CREATE INDEX alerts_by_person ON alerts (person_id, created_at);
CREATE INDEX alerts_by_consulate ON alerts (consulate_id, created_at);

-- Every location of an alert, the first one included; the newest is current.
CREATE TABLE alert_locations (
    id           BLOB PRIMARY KEY,
    alert_id     BLOB NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    location_enc BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX alert_locations_by_alert ON alert_locations (alert_id, created_at);

-- One row per SMS owed. Rows are never deleted on failure: they move
-- queued -> sending -> sent -> delivered | failed, or end expired/withdrawn.
CREATE TABLE outbox (
    id                 BLOB PRIMARY KEY,     -- also the reference given to gateways
    alert_id           BLOB REFERENCES alerts (id) ON DELETE CASCADE, -- NULL: codes, replies
    parent_id          BLOB,                 -- the alert message an "I'm safe" follows
    kind               TEXT NOT NULL CHECK (kind IN ('contact', 'self', 'consulate', 'verification', 'reply')),
    purpose            TEXT NOT NULL CHECK (purpose IN ('alert', 'safe', 'code', 'reply')),
    contact_id         BLOB,
    name_enc           BLOB,
    to_enc             BLOB NOT NULL,
    body_enc           BLOB NOT NULL,
    language           TEXT NOT NULL,
    -- Fairness: every alert's rank-0 messages go before any alert's rank-1.
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
CREATE INDEX outbox_due ON outbox (rank, created_at) WHERE status = 'queued';
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE status = 'sending';
CREATE INDEX outbox_by_alert ON outbox (alert_id);
CREATE INDEX outbox_by_parent ON outbox (parent_id) WHERE parent_id IS NOT NULL;
