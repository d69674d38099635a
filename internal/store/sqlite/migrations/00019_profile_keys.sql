-- Signing keys that intake profiles generate for themselves (OpenDSR's
-- callback and response signatures): the private key sealed with the
-- deployment's secret key, and the certificate published for it.

-- +goose Up
CREATE TABLE profile_keys (
    name            TEXT PRIMARY KEY, -- the profile, e.g. "opendsr"
    private_sealed  BLOB NOT NULL, -- sealed PKCS #8 DER
    certificate     BLOB NOT NULL, -- X.509 DER
    created_at      INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE profile_keys;
