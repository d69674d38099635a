-- Sliding-window rate limits (see store.RateLimits): one row per request a
-- limit let through, kept for one window, so "limit per window" holds over
-- every window, not only over fixed ones. rate_limits keeps the block;
-- its window_start and count are no longer read. Times are INTEGER unix
-- microseconds (UTC), as in 00001.

-- +goose Up
CREATE TABLE rate_limit_hits (
    key TEXT NOT NULL,
    at  INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_limit_hits_key_at ON rate_limit_hits (key, at);

-- +goose Down
DROP TABLE rate_limit_hits;
