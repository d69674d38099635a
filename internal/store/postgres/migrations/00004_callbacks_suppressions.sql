-- Callback events and their delivery attempts, and the suppression list.

-- +goose Up
-- One row per status change a request's callback_url is told about. The
-- body is built (and frozen) when the state change commits, so a retry
-- sends the same bytes and a late delivery still describes that moment.
-- It holds ids, status, times and counts: never an identity value.
CREATE TABLE callback_events (
    id          text PRIMARY KEY, -- UUIDv7; sent as the event id receivers deduplicate on
    request_id  text NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    seq         integer NOT NULL, -- 1, 2, ... per request: receivers keep the highest
    status      text NOT NULL,
    client_id   text NOT NULL DEFAULT '', -- whose secret signs it; '' for the admin
    url         text NOT NULL,
    body        text NOT NULL, -- JSON, exactly as sent (text, not jsonb: bytes must not change)
    state       text NOT NULL CHECK (state IN ('pending', 'delivered', 'abandoned')),
    created_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    UNIQUE (request_id, seq)
);

-- Attempts keep no response body: only what an operator needs to see why
-- a receiver is not taking events.
CREATE TABLE callback_attempts (
    event_id    text NOT NULL REFERENCES callback_events (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    time        timestamptz NOT NULL,
    duration_us bigint NOT NULL,
    http_status integer NOT NULL DEFAULT 0, -- 0 when no response came
    error       text NOT NULL DEFAULT '', -- an error class, e.g. timeout, connect, http_status
    PRIMARY KEY (event_id, attempt)
);

-- Keyed hashes (domain "suppression") of the identities of completed
-- requests, one row per submitting client ('' for the admin) so a client
-- can be answered about its own entries only. No foreign key to requests:
-- the list must outlive the request details that retention purges.
CREATE TABLE suppressions (
    hash       text NOT NULL,
    client_id  text NOT NULL DEFAULT '',
    request_id text NOT NULL, -- the request that added it, for support
    created_at timestamptz NOT NULL,
    PRIMARY KEY (hash, client_id)
);

-- +goose Down
DROP TABLE suppressions;
DROP TABLE callback_attempts;
DROP TABLE callback_events;
