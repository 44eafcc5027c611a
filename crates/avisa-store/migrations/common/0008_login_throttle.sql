-- Console logins are throttled per client address, not locked per account:
-- an attack on an account from one address no longer keeps its owner out
-- from another, and unknown usernames count the same as known ones. `key`
-- is the address's blind index ("login:<hex>"), never the address.
CREATE TABLE login_throttle (
    key      TEXT   PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at  BIGINT NOT NULL
);

-- The account lockout's columns go with it.
ALTER TABLE staff DROP COLUMN failed_logins;
ALTER TABLE staff DROP COLUMN locked_until;
