-- An alert from a place no office covers (Guam, the Northern Marianas,
-- American Samoa: US territories with no Mexican office in their
-- jurisdiction) goes to the 24-hour centre, CIAM, and says so: coverage
-- 'ciam', never "outside coverage" (issue 34).
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt as
-- in migration 11, outside sqlx's transaction (foreign keys must be off
-- while `alerts` is dropped, or the drop would cascade to every message,
-- location, event and check-in), in its own transaction.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE alerts_v22 (
    id              BLOB PRIMARY KEY,
    person_id       BLOB NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    device_id       BLOB,
    idempotency_key TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('app', 'sms', 'call', 'checkin')),
    practice        BOOLEAN NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'cancelled')),
    consulate_id    TEXT,
    coverage        TEXT NOT NULL CHECK (coverage IN ('nearest', 'home_county', 'home_state', 'ciam', 'outside', 'none')),
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
    escalated_again_at BIGINT,
    case_number     TEXT,
    outcome_enc     BLOB,
    UNIQUE (person_id, idempotency_key)
);
INSERT INTO alerts_v22 (id, person_id, device_id, idempotency_key, source, practice, state,
    consulate_id, coverage, created_at, cancelled_at, updated_at, case_state, assigned_to,
    acknowledged_at, acknowledged_by, escalated_at, resolved_at, outcome, outcome_detail_enc,
    duress_at, caller_enc, escalated_again_at, case_number, outcome_enc)
SELECT id, person_id, device_id, idempotency_key, source, practice, state,
    consulate_id, coverage, created_at, cancelled_at, updated_at, case_state, assigned_to,
    acknowledged_at, acknowledged_by, escalated_at, resolved_at, outcome, outcome_detail_enc,
    duress_at, caller_enc, escalated_again_at, case_number, outcome_enc
FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_v22 RENAME TO alerts;
CREATE INDEX alerts_by_person ON alerts (person_id, created_at);
CREATE INDEX alerts_by_consulate ON alerts (consulate_id, created_at);
CREATE INDEX alerts_unacknowledged ON alerts (created_at) WHERE case_state = 'new' AND escalated_at IS NULL;
CREATE INDEX alerts_recent ON alerts (person_id, practice, state, created_at);
CREATE UNIQUE INDEX alerts_case_number ON alerts (case_number);
COMMIT;
PRAGMA foreign_keys = ON;
