-- The console's sign-in sessions and its CSV imports. A session is known
-- by the SHA-256 of its cookie, never the cookie itself. An import's rows
-- hold identities, so they are kept sealed (AES-256-GCM, like request
-- identities) and dropped when the import ends.

-- +goose Up
CREATE TABLE console_sessions (
    id_hash    text COLLATE "C" PRIMARY KEY,
    operator   text COLLATE "C" NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

CREATE TABLE console_imports (
    id           text COLLATE "C" PRIMARY KEY,
    operator     text NOT NULL,
    state        text NOT NULL CHECK (state IN ('running', 'done')),
    total        integer NOT NULL,
    done         integer NOT NULL DEFAULT 0,
    created      integer NOT NULL DEFAULT 0,
    duplicates   integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    rows_sealed  bytea, -- NULL once the import has ended
    lease_owner  text NOT NULL DEFAULT '',
    lease_until  timestamptz NOT NULL DEFAULT 'epoch',
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);

-- +goose Down
DROP TABLE console_imports;
DROP TABLE console_sessions;
