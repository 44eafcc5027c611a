-- "Sent" is not "delivered", and silence is a state: when the first
-- delivery receipt of any kind came (receipt_at); when a message a gateway
-- took had none within sms.receipt_timeout ("sin confirmación",
-- unconfirmed_at); when an alert message in that state was sent once more
-- by the next gateway (resent_at: the console marks a possible duplicate).
ALTER TABLE outbox ADD COLUMN receipt_at BIGINT;
ALTER TABLE outbox ADD COLUMN unconfirmed_at BIGINT;
ALTER TABLE outbox ADD COLUMN resent_at BIGINT;
CREATE INDEX outbox_awaiting_receipt ON outbox (sent_at)
    WHERE status = 'sent' AND receipt_at IS NULL AND unconfirmed_at IS NULL;
