-- A send that timed out after the request was written: the provider may
-- have the message. From then on, before each new try the same gateway is
-- asked whether it has it (Twilio's message list), so a slow provider does
-- not mean a second copy.
ALTER TABLE outbox ADD COLUMN in_doubt_at BIGINT;
