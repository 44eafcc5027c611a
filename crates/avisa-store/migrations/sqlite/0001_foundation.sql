-- Foundation: key check, people (profile), devices, contacts.

-- Small key/value facts about the database itself. `key_check` holds a value
-- sealed with the data key, so a wrong key is detected at start.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- A person: one per verified phone number. The profile lives here.
CREATE TABLE people (
    id              BLOB PRIMARY KEY,           -- UUID
    phone_index     BLOB NOT NULL UNIQUE,       -- HMAC of the E.164 number
    phone_enc       BLOB NOT NULL,
    name_enc        BLOB,
    home_state_enc  BLOB,
    home_county_enc BLOB,
    keyword_enc     BLOB,
    language        TEXT NOT NULL DEFAULT 'es' CHECK (language IN ('es', 'en')),
    pin_hash        TEXT,                       -- argon2id, peppered with a key-derived secret
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- A phone app installation. Unverified until its one-time code is entered.
CREATE TABLE devices (
    id              BLOB PRIMARY KEY,
    phone_index     BLOB NOT NULL,
    phone_enc       BLOB NOT NULL,
    language        TEXT NOT NULL CHECK (language IN ('es', 'en')),
    token_hash      BLOB NOT NULL UNIQUE,       -- SHA-256 of the bearer token
    person_id       BLOB REFERENCES people (id) ON DELETE CASCADE,
    code_hash       BLOB,                       -- HMAC of the one-time code
    code_expires_at INTEGER,
    code_attempts   INTEGER NOT NULL DEFAULT 0,
    verified_at     INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX devices_by_phone ON devices (phone_index, created_at);
CREATE INDEX devices_by_person ON devices (person_id);

-- The people told when the button is pressed, each with their own message.
CREATE TABLE contacts (
    id          BLOB PRIMARY KEY,
    person_id   BLOB NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    name_enc    BLOB NOT NULL,
    phone_enc   BLOB NOT NULL,
    message_enc BLOB NOT NULL,
    language    TEXT NOT NULL CHECK (language IN ('es', 'en')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX contacts_by_person ON contacts (person_id, created_at);
