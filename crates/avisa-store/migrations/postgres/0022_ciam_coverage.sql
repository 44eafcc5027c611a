-- An alert from a place no office covers (Guam, the Northern Marianas,
-- American Samoa) goes to the 24-hour centre, CIAM, and says so: coverage
-- 'ciam', never "outside coverage" (issue 34).
ALTER TABLE alerts DROP CONSTRAINT alerts_coverage_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_coverage_check
    CHECK (coverage IN ('nearest', 'home_county', 'home_state', 'ciam', 'outside', 'none'));
