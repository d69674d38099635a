-- timestamptz keeps microseconds; the store writes UTC truncated to them.

-- +goose Up
CREATE TABLE requests (
    -- UUIDv7: ordering by id orders by creation. COLLATE "C": ids must sort
    -- bytewise (as on sqlite) for the id cursor to page correctly under
    -- any database locale.
    id              text COLLATE "C" PRIMARY KEY,
    client_id       text NOT NULL DEFAULT '', -- '' for the admin
    external_id     text NOT NULL DEFAULT '',
    regulation      text NOT NULL,
    status          text NOT NULL,
    stage           text NOT NULL,
    subject_key     text NOT NULL DEFAULT '',
    idempotency_key text NOT NULL DEFAULT '',
    callback_url    text NOT NULL DEFAULT '',
    received_at     timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    started_at      timestamptz,
    completed_at    timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX requests_idempotency ON requests (client_id, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX requests_client ON requests (client_id, id);
CREATE INDEX requests_status ON requests (status, id);
CREATE INDEX requests_subject ON requests (client_id, subject_key, id);
-- One open request per client and subject: concurrent duplicate submissions
-- cannot both insert, on PostgreSQL as on SQLite; the loser re-reads the
-- winner (intake retries on ErrConflict).
CREATE UNIQUE INDEX requests_open_subject ON requests (client_id, subject_key) WHERE status IN ('received', 'running');

CREATE TABLE request_identities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   text NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    type         text NOT NULL,
    value_sealed bytea, -- AES-GCM; NULL once the request is minimised
    value_hash   text NOT NULL, -- keyed hash, kept for duplicate checks and audits
    source       text NOT NULL CHECK (source IN ('given', 'linked')),
    UNIQUE (request_id, value_hash)
);
CREATE INDEX request_identities_hash ON request_identities (value_hash);

CREATE TABLE tasks (
    request_id  text NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    target      text NOT NULL,
    state       text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text NOT NULL DEFAULT '',
    report      jsonb NOT NULL DEFAULT '{}',
    started_at  timestamptz,
    finished_at timestamptz,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (request_id, target)
);

CREATE TABLE audit_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id text NOT NULL DEFAULT '', -- '' for events of no request
    time       timestamptz NOT NULL,
    actor      text NOT NULL,
    actor_id   text NOT NULL DEFAULT '',
    type       text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    UNIQUE (request_id, prev_hash) -- one successor per event: the chain cannot fork
);
CREATE INDEX audit_events_request ON audit_events (request_id, seq);

CREATE TABLE clients (
    id         text PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    disabled   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);

CREATE TABLE client_credentials (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind          text NOT NULL,
    hash          text,
    secret_sealed bytea,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    CHECK ((hash IS NULL) <> (secret_sealed IS NULL))
);
CREATE UNIQUE INDEX client_credentials_hash ON client_credentials (kind, hash) WHERE hash IS NOT NULL;
CREATE INDEX client_credentials_client ON client_credentials (client_id, kind);

CREATE TABLE access_tokens (
    hash       text PRIMARY KEY,
    client_id  text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz
);
CREATE INDEX access_tokens_client ON access_tokens (client_id);

CREATE TABLE rate_limits (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL,
    blocked_until timestamptz
);

-- +goose Down
DROP TABLE rate_limits;
DROP TABLE access_tokens;
DROP TABLE client_credentials;
DROP TABLE clients;
DROP TABLE audit_events;
DROP TABLE tasks;
DROP TABLE request_identities;
DROP TABLE requests;
