-- What a session unlocked with the duress PIN changes takes no real effect
-- (issue 32): the PINs it sets act as duress PINs (`decoy_hash` holds a
-- second one beside `duress_hash`), and the profile and contacts it writes
-- are kept apart, sealed with the person's key, as the view that such a
-- session reads back (`decoy_enc`); alerts never read it.
ALTER TABLE people ADD COLUMN decoy_hash TEXT;
ALTER TABLE people ADD COLUMN decoy_enc BLOB;
