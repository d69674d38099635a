-- Operators (named people and automation with a role), deadline
-- extensions, and the request register that outlives a request's details.
-- None of them holds an identity: operator tokens are keyed hashes, the
-- register keeps ids, dates, statuses and target names. Times are INTEGER
-- unix microseconds (UTC), as in 00001.

-- +goose Up
CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    token_hash TEXT NOT NULL UNIQUE, -- keyed hash of the bearer token
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
) STRICT;

-- At most one extension per request (the primary key): the law allows one.
CREATE TABLE request_extensions (
    request_id  TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    previous_due_at INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_id    TEXT NOT NULL DEFAULT '',
    extended_at INTEGER NOT NULL
) STRICT;

-- One row per request whose details were purged; the live requests table
-- answers for the others. Kept for retention.register.
CREATE TABLE request_register (
    request_id       TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL DEFAULT '',
    regulation       TEXT NOT NULL,
    status           TEXT NOT NULL,
    outcome          TEXT NOT NULL DEFAULT '',
    received_at      INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    extended_from    INTEGER, -- the due date before the extension; NULL: never extended
    closed_at        INTEGER NOT NULL,
    targets          TEXT NOT NULL DEFAULT '[]', -- JSON [{"target","state"}]
    operator_actions TEXT NOT NULL DEFAULT '[]'  -- JSON [{"time","type","actor","actor_id"}]
) STRICT;
CREATE INDEX request_register_closed ON request_register (closed_at);
CREATE INDEX request_register_received ON request_register (received_at);
CREATE INDEX requests_received ON requests (received_at);

-- +goose Down
DROP INDEX requests_received;
DROP TABLE request_register;
DROP TABLE request_extensions;
DROP TABLE operators;
