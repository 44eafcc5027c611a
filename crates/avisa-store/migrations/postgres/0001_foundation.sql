-- Foundation: key check, people (profile), devices, contacts.

-- Small key/value facts about the database itself. `key_check` holds a value
-- sealed with the data key, so a wrong key is detected at start.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- A person: one per verified phone number. The profile lives here.
CREATE TABLE people (
    id              UUID PRIMARY KEY,
    phone_index     BYTEA NOT NULL UNIQUE,       -- HMAC of the E.164 number
    phone_enc       BYTEA NOT NULL,
    name_enc        BYTEA,
    home_state_enc  BYTEA,
    home_county_enc BYTEA,
    keyword_enc     BYTEA,
    language        TEXT NOT NULL DEFAULT 'es' CHECK (language IN ('es', 'en')),
    pin_hash        TEXT,                       -- argon2id, peppered with a key-derived secret
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- A phone app installation. Unverified until its one-time code is entered.
CREATE TABLE devices (
    id              UUID PRIMARY KEY,
    phone_index     BYTEA NOT NULL,
    phone_enc       BYTEA NOT NULL,
    language        TEXT NOT NULL CHECK (language IN ('es', 'en')),
    token_hash      BYTEA NOT NULL UNIQUE,       -- SHA-256 of the bearer token
    person_id       UUID REFERENCES people (id) ON DELETE CASCADE,
    code_hash       BYTEA,                       -- HMAC of the one-time code
    code_expires_at BIGINT,
    code_attempts   INTEGER NOT NULL DEFAULT 0,
    verified_at     BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX devices_by_phone ON devices (phone_index, created_at);
CREATE INDEX devices_by_person ON devices (person_id);

-- The people told when the button is pressed, each with their own message.
CREATE TABLE contacts (
    id          UUID PRIMARY KEY,
    person_id   UUID NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    name_enc    BYTEA NOT NULL,
    phone_enc   BYTEA NOT NULL,
    message_enc BYTEA NOT NULL,
    language    TEXT NOT NULL CHECK (language IN ('es', 'en')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX contacts_by_person ON contacts (person_id, created_at);
