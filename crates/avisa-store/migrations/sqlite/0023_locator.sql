-- What the family needs to find the person in ICE's Online Detainee Locator
-- (issue 34): the full legal name, country and date of birth and the
-- A-number, sealed with the person's key like every personal field; and the
-- contacts the person chose to receive them, in a second SMS after an alert.
-- And where each contact's SMS says who is asking: first (the default) or
-- at the end, the person's choice.
ALTER TABLE people ADD COLUMN locator_enc BLOB;
ALTER TABLE contacts ADD COLUMN locator BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE people ADD COLUMN name_at_end BOOLEAN NOT NULL DEFAULT FALSE;
