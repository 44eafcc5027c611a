-- A counter on each person that every change to their contacts bumps, in the
-- same statement (triggers), so a process may keep a person's opened
-- contacts in memory and know, from the person's row alone, whether they
-- are still current — also when another process changed them.
ALTER TABLE people ADD COLUMN contacts_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER contacts_version_on_insert AFTER INSERT ON contacts
BEGIN
    UPDATE people SET contacts_version = contacts_version + 1 WHERE id = NEW.person_id;
END;

CREATE TRIGGER contacts_version_on_update AFTER UPDATE ON contacts
BEGIN
    UPDATE people SET contacts_version = contacts_version + 1
     WHERE id IN (OLD.person_id, NEW.person_id);
END;

CREATE TRIGGER contacts_version_on_delete AFTER DELETE ON contacts
BEGIN
    UPDATE people SET contacts_version = contacts_version + 1 WHERE id = OLD.person_id;
END;
