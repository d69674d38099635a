-- Only a task that has had a task_waits row (an asynchronous target's)
-- has anything for task_waits_end to drop, yet the trigger ran its
-- plpgsql, and its UPDATE, on the end of every task: tens of
-- microseconds each time, milliseconds the first time in a connection.
-- tasks.has_wait is set by the statements of the store that create a wait,
-- under the task's row lock, so the trigger's WHEN (evaluated without
-- calling the function) skips every task that never waited.

-- +goose Up
ALTER TABLE tasks ADD COLUMN has_wait boolean NOT NULL DEFAULT false;
UPDATE tasks SET has_wait = true
WHERE EXISTS (SELECT 1 FROM task_waits w WHERE w.request_id = tasks.request_id AND w.target = tasks.target);
DROP TRIGGER task_waits_end ON tasks;
CREATE TRIGGER task_waits_end AFTER UPDATE OF state ON tasks
FOR EACH ROW WHEN (NEW.state NOT IN ('pending', 'running') AND NEW.has_wait)
EXECUTE FUNCTION task_waits_end();

-- +goose Down
DROP TRIGGER task_waits_end ON tasks;
CREATE TRIGGER task_waits_end AFTER UPDATE OF state ON tasks
FOR EACH ROW WHEN (NEW.state NOT IN ('pending', 'running'))
EXECUTE FUNCTION task_waits_end();
ALTER TABLE tasks DROP COLUMN has_wait;
