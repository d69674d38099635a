-- Operators (named people and automation with a role), deadline
-- extensions, and the request register that outlives a request's details.
-- None of them holds an identity: operator tokens are keyed hashes, the
-- register keeps ids, dates, statuses and target names.

-- +goose Up
CREATE TABLE operators (
    name       text COLLATE "C" PRIMARY KEY,
    role       text NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    token_hash text NOT NULL UNIQUE, -- keyed hash of the bearer token
    disabled   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    rotated_at timestamptz
);

-- At most one extension per request (the primary key): the law allows one.
CREATE TABLE request_extensions (
    request_id      text COLLATE "C" PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    previous_due_at timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    reason          text NOT NULL,
    actor           text NOT NULL,
    actor_id        text NOT NULL DEFAULT '',
    extended_at     timestamptz NOT NULL
);

-- One row per request whose details were purged; the live requests table
-- answers for the others. Kept for retention.register.
CREATE TABLE request_register (
    request_id       text COLLATE "C" PRIMARY KEY,
    client_id        text NOT NULL DEFAULT '',
    regulation       text NOT NULL,
    status           text NOT NULL,
    outcome          text NOT NULL DEFAULT '',
    received_at      timestamptz NOT NULL,
    due_at           timestamptz NOT NULL,
    extended_from    timestamptz, -- the due date before the extension; NULL: never extended
    closed_at        timestamptz NOT NULL,
    targets          text NOT NULL DEFAULT '[]', -- JSON [{"target","state"}]
    operator_actions text NOT NULL DEFAULT '[]'  -- JSON [{"time","type","actor","actor_id"}]
);
CREATE INDEX request_register_closed ON request_register (closed_at);
CREATE INDEX request_register_received ON request_register (received_at);
CREATE INDEX requests_received ON requests (received_at);

-- +goose Down
DROP INDEX requests_received;
DROP TABLE request_register;
DROP TABLE request_extensions;
DROP TABLE operators;
