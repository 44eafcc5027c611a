-- When the person was (or will be) told by SMS that their contacts or
-- keyword changed: at most one such notice per ten minutes, the changes of
-- a window told together at its end. NULL: never told.
ALTER TABLE people ADD COLUMN changes_notice_at INTEGER;
