-- SMS budgets: how much of each budget a fixed window has used. `key`
-- names the budget and what it counts for ("number:<blind index>",
-- "address:<blind index>", "country:MX", "all"), never a number or an
-- address in clear. One statement takes a unit or finds the budget spent,
-- so a limit holds under any number of parallel requests.
CREATE TABLE sms_budgets (
    key          TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
