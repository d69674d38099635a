-- Proof of erasure: signed receipts (kept for the legal retention period,
-- after the request's details are purged) and the Ed25519 keys that sign
-- them. Neither holds an identity value: receipts carry keyed hashes.

-- +goose Up
CREATE TABLE receipts (
    request_id TEXT PRIMARY KEY, -- no foreign key: outlives the request row
    client_id  TEXT NOT NULL DEFAULT '', -- scope of GET .../receipt after the purge
    key_id     TEXT NOT NULL,
    body       TEXT NOT NULL, -- the signed receipt document, JSON
    issued_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX receipts_issued ON receipts (issued_at);

CREATE TABLE signing_keys (
    key_id          TEXT PRIMARY KEY, -- hex SHA-256 of the public key, first 16 bytes
    public_key      BLOB NOT NULL, -- raw 32-byte Ed25519 public key
    private_sealed  BLOB, -- sealed seed of a generated key; NULL for LETHE_SIGNING_KEY
    current         INTEGER UNIQUE CHECK (current = 1), -- 1 for the signing key, NULL for retired ones
    created_at      INTEGER NOT NULL,
    retired_at      INTEGER
) STRICT;

-- Finds finished requests whose details are due for purging.
CREATE INDEX requests_completed ON requests (completed_at) WHERE completed_at IS NOT NULL;

-- +goose Down
DROP INDEX requests_completed;
DROP TABLE signing_keys;
DROP TABLE receipts;
