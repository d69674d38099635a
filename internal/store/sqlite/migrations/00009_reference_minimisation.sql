-- Callback URLs are sealed at rest from now on and dropped once nothing
-- needs them: a request's at minimisation, a status event's when its
-- delivery ends. Rows written before keep theirs plain; this drops what
-- the new rules would already have dropped. Plain URLs still needed (open
-- requests, pending events) stay readable until then; SQL cannot seal.

-- +goose Up
UPDATE requests SET callback_url = ''
WHERE callback_url <> '' AND status IN ('completed', 'failed', 'canceled');
UPDATE callback_events SET url = '' WHERE state <> 'pending' AND url <> '';

-- +goose Down
-- Dropped URLs cannot come back.
SELECT 1;
