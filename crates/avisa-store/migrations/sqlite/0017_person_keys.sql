-- Each person's own key, wrapped by the database's root key (which the
-- master key wraps, in `meta`). Everything sealed of a person is sealed
-- with it; deleting the person deletes this row in the same statement, and
-- with it the only way to open any copy of their values.
CREATE TABLE person_keys (
    person_id BLOB PRIMARY KEY REFERENCES people (id) ON DELETE CASCADE,
    wrapped   BLOB NOT NULL
);
