-- A case's outcome (detained, released, …) sealed with the person's key,
-- like its detail: a copy of the database no longer says who was detained,
-- and deleting the person deletes it with the rest. The plain column stays
-- for outcomes written before, which the store seals at start.
ALTER TABLE alerts ADD COLUMN outcome_enc BYTEA;
