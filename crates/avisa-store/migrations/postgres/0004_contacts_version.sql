-- A counter on each person that every change to their contacts bumps, in the
-- same statement (a trigger), so a process may keep a person's opened
-- contacts in memory and know, from the person's row alone, whether they
-- are still current — also when another process changed them.
ALTER TABLE people ADD COLUMN contacts_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION bump_contacts_version() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE people SET contacts_version = contacts_version + 1 WHERE id = OLD.person_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.person_id <> OLD.person_id) THEN
        UPDATE people SET contacts_version = contacts_version + 1 WHERE id = NEW.person_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER contacts_version AFTER INSERT OR UPDATE OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION bump_contacts_version();
