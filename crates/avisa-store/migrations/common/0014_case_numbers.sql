-- Case numbers staff can say on the phone ("LAX-2026-0042"): unique per
-- consulate code and local year, from one counter row per prefix, advanced
-- in the transaction that writes the alerts. Alerts from before have none.
ALTER TABLE alerts ADD COLUMN case_number TEXT;
CREATE UNIQUE INDEX alerts_case_number ON alerts (case_number);
CREATE TABLE case_counters (
    prefix TEXT PRIMARY KEY,
    last   BIGINT NOT NULL
);
