-- What the pipeline keeps while a target works on an erasure asynchronously
-- (see store.TaskWaits). Times are INTEGER unix microseconds (UTC), as in
-- 00001.

-- +goose Up
CREATE TABLE task_waits (
    request_id        TEXT NOT NULL,
    target            TEXT NOT NULL,
    checkpoint_sealed BLOB, -- AES-GCM: a check URL may name the subject; NULL when none
    token_hash        TEXT, -- keyed hash of the callback token, for lookup
    token_sealed      BLOB, -- the token, so a repeated call sends the same callback URL
    polls             INTEGER NOT NULL DEFAULT 0, -- pending answers so far
    pending_since     INTEGER,
    completion        TEXT, -- JSON store.TaskCompletion; NULL until the target calls back
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (request_id, target),
    FOREIGN KEY (request_id, target) REFERENCES tasks (request_id, target) ON DELETE CASCADE
) STRICT;
CREATE UNIQUE INDEX task_waits_token ON task_waits (token_hash) WHERE token_hash IS NOT NULL;

-- When a task ends, whatever ended it, its checkpoint and token are of no
-- further use: drop them in the same transaction. The token's hash stays so
-- a late or repeated callback is still recognised (and answered) rather
-- than looking like a forged one.
-- +goose StatementBegin
CREATE TRIGGER task_waits_end AFTER UPDATE OF state ON tasks
WHEN NEW.state NOT IN ('pending', 'running')
BEGIN
    UPDATE task_waits SET checkpoint_sealed = NULL, token_sealed = NULL, completion = NULL
    WHERE request_id = NEW.request_id AND target = NEW.target;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER task_waits_end;
DROP TABLE task_waits;
