-- What the pipeline keeps while a target works on an erasure asynchronously
-- (see store.TaskWaits).

-- +goose Up
CREATE TABLE task_waits (
    request_id        text NOT NULL,
    target            text NOT NULL,
    checkpoint_sealed bytea, -- AES-GCM: a check URL may name the subject; NULL when none
    token_hash        text, -- keyed hash of the callback token, for lookup
    token_sealed      bytea, -- the token, so a repeated call sends the same callback URL
    polls             integer NOT NULL DEFAULT 0, -- pending answers so far
    pending_since     timestamptz,
    completion        text, -- JSON store.TaskCompletion; NULL until the target calls back
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (request_id, target),
    FOREIGN KEY (request_id, target) REFERENCES tasks (request_id, target) ON DELETE CASCADE
);
CREATE UNIQUE INDEX task_waits_token ON task_waits (token_hash) WHERE token_hash IS NOT NULL;

-- When a task ends, whatever ended it, its checkpoint and token are of no
-- further use: drop them in the same transaction. The token's hash stays so
-- a late or repeated callback is still recognised (and answered) rather
-- than looking like a forged one.
-- +goose StatementBegin
CREATE FUNCTION task_waits_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_waits SET checkpoint_sealed = NULL, token_sealed = NULL, completion = NULL
    WHERE request_id = NEW.request_id AND target = NEW.target;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER task_waits_end AFTER UPDATE OF state ON tasks
FOR EACH ROW WHEN (NEW.state NOT IN ('pending', 'running'))
EXECUTE FUNCTION task_waits_end();

-- +goose Down
DROP TRIGGER task_waits_end ON tasks;
DROP FUNCTION task_waits_end();
DROP TABLE task_waits;
