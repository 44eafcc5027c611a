-- Check-in timers (a dead man's switch for ICE appointments and court
-- dates), kept by the server so they fire even when the phone is taken:
-- at the deadline without a check-out the person's alert is raised, once.
-- The place and the note are sealed like every personal field.
CREATE TABLE checkins (
    id             BLOB PRIMARY KEY,
    person_id      BLOB NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    appointment_at INTEGER NOT NULL,
    deadline       INTEGER NOT NULL,
    place_enc      BLOB,
    note_enc       BLOB,
    location_enc   BLOB,
    state          TEXT NOT NULL CHECK (state IN ('scheduled', 'checked_out', 'fired', 'cancelled')),
    reminded_at    INTEGER,
    -- The alert a missed deadline (or a forced check-out) raised.
    alert_id       BLOB REFERENCES alerts (id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX checkins_due ON checkins (state, deadline);
CREATE INDEX checkins_by_person ON checkins (person_id, state);
CREATE INDEX checkins_by_alert ON checkins (alert_id);
