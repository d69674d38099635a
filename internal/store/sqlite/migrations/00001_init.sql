-- Times are INTEGER unix microseconds (UTC): exact, sortable, and the
-- precision postgres keeps, so both stores return identical values.
-- STRICT makes SQLite enforce the declared column types.

-- +goose Up
CREATE TABLE requests (
    id              TEXT PRIMARY KEY, -- UUIDv7: ordering by id orders by creation
    client_id       TEXT NOT NULL DEFAULT '', -- '' for the admin
    external_id     TEXT NOT NULL DEFAULT '',
    regulation      TEXT NOT NULL,
    status          TEXT NOT NULL,
    stage           TEXT NOT NULL,
    subject_key     TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL DEFAULT '',
    callback_url    TEXT NOT NULL DEFAULT '',
    received_at     INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    started_at      INTEGER,
    completed_at    INTEGER,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX requests_idempotency ON requests (client_id, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX requests_client ON requests (client_id, id);
CREATE INDEX requests_status ON requests (status, id);
CREATE INDEX requests_subject ON requests (client_id, subject_key, id);
-- One open request per client and subject: concurrent duplicate submissions
-- cannot both insert, on PostgreSQL as on SQLite; the loser re-reads the
-- winner (intake retries on ErrConflict).
CREATE UNIQUE INDEX requests_open_subject ON requests (client_id, subject_key) WHERE status IN ('received', 'running');

CREATE TABLE request_identities (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    value_sealed BLOB, -- AES-GCM; NULL once the request is minimised
    value_hash   TEXT NOT NULL, -- keyed hash, kept for duplicate checks and audits
    source       TEXT NOT NULL CHECK (source IN ('given', 'linked')),
    UNIQUE (request_id, value_hash)
) STRICT;
CREATE INDEX request_identities_hash ON request_identities (value_hash);

CREATE TABLE tasks (
    request_id  TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    report      TEXT NOT NULL DEFAULT '{}', -- JSON
    started_at  INTEGER,
    finished_at INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (request_id, target)
) STRICT;

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: never reused
    request_id TEXT NOT NULL DEFAULT '', -- '' for events of no request
    time       INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    actor_id   TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}', -- JSON
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    UNIQUE (request_id, prev_hash) -- one successor per event: the chain cannot fork
) STRICT;
CREATE INDEX audit_events_request ON audit_events (request_id, seq);

CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE client_credentials (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id     TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    hash          TEXT,
    secret_sealed BLOB,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    CHECK ((hash IS NULL) <> (secret_sealed IS NULL))
) STRICT;
CREATE UNIQUE INDEX client_credentials_hash ON client_credentials (kind, hash) WHERE hash IS NOT NULL;
CREATE INDEX client_credentials_client ON client_credentials (client_id, kind);

CREATE TABLE access_tokens (
    hash       TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;
CREATE INDEX access_tokens_client ON access_tokens (client_id);

CREATE TABLE rate_limits (
    key           TEXT PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    blocked_until INTEGER
) STRICT;

-- +goose Down
DROP TABLE rate_limits;
DROP TABLE access_tokens;
DROP TABLE client_credentials;
DROP TABLE clients;
DROP TABLE audit_events;
DROP TABLE tasks;
DROP TABLE request_identities;
DROP TABLE requests;
