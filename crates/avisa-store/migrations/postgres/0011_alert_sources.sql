-- Alerts raised by the voice line ('call') and by a check-in timer
-- ('checkin'), and the number an alert was raised from when it is not the
-- person's own (the voice line, or "AYUDA <number> <PIN>" by SMS from another
-- phone), sealed like every personal field. Live location: the "nueva
-- ubicacion" SMS to contacts who chose them (outbox purpose 'update',
-- contacts.location_updates), and trail points kept but flagged when they
-- are too far from the one before for the time between them.
ALTER TABLE alerts DROP CONSTRAINT alerts_source_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_source_check
    CHECK (source IN ('app', 'sms', 'call', 'checkin'));
ALTER TABLE alerts ADD COLUMN caller_enc BYTEA;
ALTER TABLE outbox DROP CONSTRAINT outbox_purpose_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_purpose_check
    CHECK (purpose IN ('alert', 'safe', 'code', 'reply', 'update'));
ALTER TABLE contacts ADD COLUMN location_updates BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alert_locations ADD COLUMN implausible BOOLEAN NOT NULL DEFAULT FALSE;
