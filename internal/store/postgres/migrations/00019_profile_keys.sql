-- Signing keys that intake profiles generate for themselves (OpenDSR's
-- callback and response signatures): the private key sealed with the
-- deployment's secret key, and the certificate published for it.

-- +goose Up
CREATE TABLE profile_keys (
    name            text PRIMARY KEY, -- the profile, e.g. "opendsr"
    private_sealed  bytea NOT NULL, -- sealed PKCS #8 DER
    certificate     bytea NOT NULL, -- X.509 DER
    created_at      timestamptz NOT NULL
);

-- +goose Down
DROP TABLE profile_keys;
