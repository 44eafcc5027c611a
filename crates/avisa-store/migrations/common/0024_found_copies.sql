-- A message sent in doubt may be found at the provider as a copy with the
-- same text to the same number; two instances can take one copy for two
-- messages (one of them never sent). Which rows were found, not sent, is
-- kept, so the sweep can give such a row back to the queue when another row
-- holds the same copy; and the provider's ids are indexed: the look-up of
-- "is this copy already another message's" must not read the whole outbox
-- of a large population.
ALTER TABLE outbox ADD COLUMN found_in_doubt BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX outbox_by_provider ON outbox (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX outbox_found ON outbox (provider_id) WHERE found_in_doubt;
