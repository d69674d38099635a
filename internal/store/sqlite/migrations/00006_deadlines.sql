-- Deadline warnings (see store.Deadlines): when the sweep first found a
-- request open within the warning period, and past its due date. Times are
-- INTEGER unix microseconds (UTC), as in 00001.

-- +goose Up
ALTER TABLE requests ADD COLUMN due_soon_flagged_at INTEGER;
ALTER TABLE requests ADD COLUMN overdue_flagged_at INTEGER;
-- Only open requests have a deadline that matters; the index stays as small
-- as the backlog however many closed requests are kept.
CREATE INDEX requests_open_due ON requests (due_at) WHERE status IN ('received', 'running');

-- +goose Down
DROP INDEX requests_open_due;
ALTER TABLE requests DROP COLUMN overdue_flagged_at;
ALTER TABLE requests DROP COLUMN due_soon_flagged_at;
