-- A delivery receipt that arrives while its message is back in the queue
-- (its send timed out and the provider is still to be asked) is kept here,
-- not dropped, and applied when the send is recorded (issue 35): a message
-- the provider delivered is never left "sin confirmación".
CREATE TABLE kept_receipts (
    message_id  UUID PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    reason      TEXT,
    at          BIGINT NOT NULL
);
