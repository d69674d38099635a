-- The console's sign-in sessions and its CSV imports. A session is known
-- by the SHA-256 of its cookie, never the cookie itself. An import's rows
-- hold identities, so they are kept sealed (AES-256-GCM, like request
-- identities) and dropped when the import ends. Times are INTEGER unix
-- microseconds (UTC), as in 00001.

-- +goose Up
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    operator   TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

CREATE TABLE console_imports (
    id           TEXT PRIMARY KEY,
    operator     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'done')),
    total        INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    created      INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    rows_sealed  BLOB, -- NULL once the import has ended
    lease_owner  TEXT NOT NULL DEFAULT '',
    lease_until  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
) STRICT;

-- +goose Down
DROP TABLE console_imports;
DROP TABLE console_sessions;
