-- Numbers whose owners told a provider to stop our messages (Twilio 21610):
-- a message to them is final on every gateway, and the person sees that
-- the contact blocked Avisa. Only the keyed blind index of the number.
CREATE TABLE opt_outs (
    phone_index BLOB PRIMARY KEY,
    at          INTEGER NOT NULL
);
