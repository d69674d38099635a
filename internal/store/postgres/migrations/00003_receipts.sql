-- Proof of erasure: signed receipts (kept for the legal retention period,
-- after the request's details are purged) and the Ed25519 keys that sign
-- them. Neither holds an identity value: receipts carry keyed hashes.

-- +goose Up
CREATE TABLE receipts (
    request_id text COLLATE "C" PRIMARY KEY, -- no foreign key: outlives the request row
    client_id  text NOT NULL DEFAULT '', -- scope of GET .../receipt after the purge
    key_id     text NOT NULL,
    body       text NOT NULL, -- the signed receipt document, JSON (text, not jsonb: kept byte for byte)
    issued_at  timestamptz NOT NULL
);
CREATE INDEX receipts_issued ON receipts (issued_at);

CREATE TABLE signing_keys (
    key_id          text PRIMARY KEY, -- hex SHA-256 of the public key, first 16 bytes
    public_key      bytea NOT NULL, -- raw 32-byte Ed25519 public key
    private_sealed  bytea, -- sealed seed of a generated key; NULL for LETHE_SIGNING_KEY
    current         integer UNIQUE CHECK (current = 1), -- 1 for the signing key, NULL for retired ones
    created_at      timestamptz NOT NULL,
    retired_at      timestamptz
);

-- Finds finished requests whose details are due for purging.
CREATE INDEX requests_completed ON requests (completed_at) WHERE completed_at IS NOT NULL;

-- +goose Down
DROP INDEX requests_completed;
DROP TABLE signing_keys;
DROP TABLE receipts;
