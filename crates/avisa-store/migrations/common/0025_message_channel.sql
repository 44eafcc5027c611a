-- How each message reaches its recipient. Every message so far was an SMS;
-- a gateway declares the channels it carries, and a message fails over
-- only between the gateways of its own channel.
ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms';
