-- The instances running on this database, each beating every fraction of a
-- second: a message is held by the instance that claimed it (`holder`), and
-- one whose holder stopped beating goes back to the queue within seconds,
-- not at the end of its lease. The live count also splits each gateway's
-- rate between the instances.
CREATE TABLE instances (
    id      TEXT PRIMARY KEY,
    beat_at BIGINT NOT NULL
);
ALTER TABLE outbox ADD COLUMN holder TEXT;
