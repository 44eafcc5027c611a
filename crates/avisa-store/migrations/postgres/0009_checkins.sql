-- Check-in timers (a dead man's switch for ICE appointments and court
-- dates), kept by the server so they fire even when the phone is taken:
-- at the deadline without a check-out the person's alert is raised, once.
-- The place and the note are sealed like every personal field.
CREATE TABLE checkins (
    id             UUID PRIMARY KEY,
    person_id      UUID NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    appointment_at BIGINT NOT NULL,
    deadline       BIGINT NOT NULL,
    place_enc      BYTEA,
    note_enc       BYTEA,
    location_enc   BYTEA,
    state          TEXT NOT NULL CHECK (state IN ('scheduled', 'checked_out', 'fired', 'cancelled')),
    reminded_at    BIGINT,
    -- The alert a missed deadline (or a forced check-out) raised.
    alert_id       UUID REFERENCES alerts (id) ON DELETE SET NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX checkins_due ON checkins (state, deadline);
CREATE INDEX checkins_by_person ON checkins (person_id, state);
CREATE INDEX checkins_by_alert ON checkins (alert_id);
