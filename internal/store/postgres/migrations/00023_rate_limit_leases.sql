-- Rate-limit leases (see store.RateLimits): a lethe process may take
-- several tokens of a key at once and spend them from memory, so the
-- key's row is written once per batch, not before every request. A row of
-- rate_limit_hits now counts n requests; a lease's unspent tokens are
-- dated at the end of the lease (at or after any request they let
-- through) and named by lease so the process can later give back what it
-- did not spend and re-date the rest to its last request.

-- +goose Up
ALTER TABLE rate_limit_hits ADD COLUMN n integer NOT NULL DEFAULT 1;
ALTER TABLE rate_limit_hits ADD COLUMN lease text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE rate_limit_hits DROP COLUMN lease;
ALTER TABLE rate_limit_hits DROP COLUMN n;
