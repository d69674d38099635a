-- Only a task that has had a task_waits row (an asynchronous target's)
-- has anything for task_waits_end to drop, yet the trigger ran its UPDATE
-- on the end of every task. tasks.has_wait is set by the statements of
-- the store that create a wait, in their transaction, so the trigger's
-- WHEN skips every task that never waited.

-- +goose Up
ALTER TABLE tasks ADD COLUMN has_wait INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET has_wait = 1
WHERE EXISTS (SELECT 1 FROM task_waits w WHERE w.request_id = tasks.request_id AND w.target = tasks.target);
DROP TRIGGER task_waits_end;
-- +goose StatementBegin
CREATE TRIGGER task_waits_end AFTER UPDATE OF state ON tasks
WHEN NEW.state NOT IN ('pending', 'running') AND NEW.has_wait
BEGIN
    UPDATE task_waits SET checkpoint_sealed = NULL, token_sealed = NULL, completion = NULL
    WHERE request_id = NEW.request_id AND target = NEW.target;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER task_waits_end;
-- +goose StatementBegin
CREATE TRIGGER task_waits_end AFTER UPDATE OF state ON tasks
WHEN NEW.state NOT IN ('pending', 'running')
BEGIN
    UPDATE task_waits SET checkpoint_sealed = NULL, token_sealed = NULL, completion = NULL
    WHERE request_id = NEW.request_id AND target = NEW.target;
END;
-- +goose StatementEnd
ALTER TABLE tasks DROP COLUMN has_wait;
