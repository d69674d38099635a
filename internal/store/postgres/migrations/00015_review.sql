-- Operator control: holds (a request stopped for a person to decide),
-- bulk retries (one durable record per "retry every failed task of this
-- target"), and the requests an operator can still act on.

-- +goose Up
-- One row per hold placed on a request; the request is held while one of
-- its holds has not ended. note is an operator's free text (checked for
-- identities before it is stored); until is when a waiting period ends.
CREATE TABLE request_holds (
    id          bigserial PRIMARY KEY,
    request_id  text NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    reason      text NOT NULL,
    note        text NOT NULL DEFAULT '',
    until       timestamptz,
    placed_at   timestamptz NOT NULL,
    placed_by   text NOT NULL DEFAULT '', -- operator name; '' for the service
    ended_at    timestamptz,
    ended_as    text NOT NULL DEFAULT '', -- approved, released, expired, denied, canceled
    ended_by    text NOT NULL DEFAULT ''
);
CREATE INDEX request_holds_request ON request_holds (request_id, id);
CREATE INDEX request_holds_until ON request_holds (until) WHERE ended_at IS NULL AND until IS NOT NULL;

-- A bulk retry is worked by a job that may die half way and run again;
-- cutoff is when it was asked for: it retries the tasks failed by then.
CREATE TABLE bulk_retries (
    id          text COLLATE "C" PRIMARY KEY,
    target      text NOT NULL,
    cutoff      timestamptz NOT NULL,
    actor       text NOT NULL,
    actor_id    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);

-- The tasks a bulk retry has retried, each marked in the transaction that
-- retries it: a rerun after a crash skips them, whatever the clocks say.
CREATE TABLE bulk_retry_tasks (
    bulk_id    text NOT NULL REFERENCES bulk_retries (id) ON DELETE CASCADE,
    request_id text NOT NULL,
    target     text NOT NULL,
    PRIMARY KEY (bulk_id, request_id, target)
);

-- Held requests are open: a duplicate submission finds them.
DROP INDEX requests_open_subject;
CREATE UNIQUE INDEX requests_open_subject ON requests (client_id, subject_key) WHERE status IN ('received', 'running', 'held');

-- The deadline sweep follows every request an operator still has to act
-- on: open ones and failed ones not yet closed.
CREATE INDEX requests_tracked_due ON requests (due_at)
    WHERE status IN ('received', 'running', 'held') OR (status = 'failed' AND stage = 'done');
CREATE INDEX tasks_failed_target ON tasks (target, finished_at) WHERE state = 'failed';

-- Failed requests ended before re-drive existed had their identities
-- dropped: nothing can re-drive them.
UPDATE requests SET stage = 'closed' WHERE status = 'failed' AND stage = 'done';

-- +goose Down
UPDATE requests SET stage = 'done' WHERE status = 'failed' AND stage = 'closed';
DROP INDEX tasks_failed_target;
DROP INDEX requests_tracked_due;
DROP INDEX requests_open_subject;
CREATE UNIQUE INDEX requests_open_subject ON requests (client_id, subject_key) WHERE status IN ('received', 'running');
DROP TABLE bulk_retry_tasks;
DROP TABLE bulk_retries;
DROP TABLE request_holds;
