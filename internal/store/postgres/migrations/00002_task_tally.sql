-- A task's final report is built from two records kept while it runs (see
-- store.TaskTally): the connector's plan, taken before the first Erase
-- attempt, and the sum of every attempt's report. One attempt's report
-- alone undercounts whenever an earlier attempt committed work.

-- +goose Up
ALTER TABLE tasks ADD COLUMN planned jsonb; -- NULL until planned
ALTER TABLE tasks ADD COLUMN progress jsonb NOT NULL DEFAULT '{}'; -- the attempts' sum

-- +goose Down
ALTER TABLE tasks DROP COLUMN progress;
ALTER TABLE tasks DROP COLUMN planned;
