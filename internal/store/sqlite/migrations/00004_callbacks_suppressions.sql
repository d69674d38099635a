-- Callback events and their delivery attempts, and the suppression list.
-- Times are INTEGER unix microseconds (UTC), as in 00001.

-- +goose Up
-- One row per status change a request's callback_url is told about. The
-- body is built (and frozen) when the state change commits, so a retry
-- sends the same bytes and a late delivery still describes that moment.
-- It holds ids, status, times and counts: never an identity value.
CREATE TABLE callback_events (
    id          TEXT PRIMARY KEY, -- UUIDv7; sent as the event id receivers deduplicate on
    request_id  TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL, -- 1, 2, ... per request: receivers keep the highest
    status      TEXT NOT NULL,
    client_id   TEXT NOT NULL DEFAULT '', -- whose secret signs it; '' for the admin
    url         TEXT NOT NULL,
    body        TEXT NOT NULL, -- JSON, exactly as sent
    state       TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'abandoned')),
    created_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    UNIQUE (request_id, seq)
) STRICT;

-- Attempts keep no response body: only what an operator needs to see why
-- a receiver is not taking events.
CREATE TABLE callback_attempts (
    event_id    TEXT NOT NULL REFERENCES callback_events (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    http_status INTEGER NOT NULL DEFAULT 0, -- 0 when no response came
    error       TEXT NOT NULL DEFAULT '', -- an error class, e.g. timeout, connect, http_status
    PRIMARY KEY (event_id, attempt)
) STRICT;

-- Keyed hashes (domain "suppression") of the identities of completed
-- requests, one row per submitting client ('' for the admin) so a client
-- can be answered about its own entries only. No foreign key to requests:
-- the list must outlive the request details that retention purges.
CREATE TABLE suppressions (
    hash       TEXT NOT NULL,
    client_id  TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL, -- the request that added it, for support
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hash, client_id)
) STRICT;

-- +goose Down
DROP TABLE suppressions;
DROP TABLE callback_attempts;
DROP TABLE callback_events;
