-- The person's alert limit is counted inside every group commit (and read
-- before each press): with every column it reads in one index, the count
-- never visits the alerts themselves.
CREATE INDEX alerts_recent ON alerts (person_id, practice, state, created_at);
