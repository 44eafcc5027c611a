-- The second escalation of an alert nobody acknowledged: its duty SMS go
-- once, across instances, like the first's.
ALTER TABLE alerts ADD COLUMN escalated_again_at BIGINT;
