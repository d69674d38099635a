package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

const taskCols = `request_id, target, state, attempts, last_error, report, started_at, finished_at, updated_at`

func scanTask(s scanner) (lethe.Task, error) {
	var t lethe.Task
	var report string
	err := s.Scan(&t.RequestID, &t.Target, &t.State, &t.Attempts, &t.LastError, &report,
		dbTime{&t.StartedAt}, dbTime{&t.FinishedAt}, dbTime{&t.UpdatedAt})
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(report), &t.Report); err != nil {
		return t, fmt.Errorf("decode report of task %s: %w", t.Target, err)
	}
	return t, nil
}

func scanTaskRows(rows Rows) (lethe.Task, error) { return scanTask(rows) }

// CreateTasks implements store.Tasks. Inside a Tx it remembers the tasks
// its INSERT created, whose rows nobody else can see yet: until the
// transaction's next write, their plan is known to be unset (SetTaskPlan).
func (q *queries) CreateTasks(ctx context.Context, requestID string, targets []string, at time.Time) error {
	err := q.atomic(ctx, func(q *queries) error {
		for batch := range slices.Chunk(targets, taskBatch) {
			var sb strings.Builder
			sb.WriteString(`INSERT INTO tasks (request_id, target, state, attempts, last_error, report, updated_at) VALUES `)
			args := make([]any, 0, 4*len(batch))
			for i, target := range batch {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, 0, '', '{}', ?)")
				args = append(args, requestID, target, lethe.TaskPending, q.ts(at))
			}
			sb.WriteString(" ON CONFLICT (request_id, target) DO NOTHING RETURNING target")
			rows, err := q.query(ctx, sb.String(), args...)
			if err != nil {
				return err
			}
			created, err := collect(rows, func(rows Rows) (string, error) {
				var t string
				return t, rows.Scan(&t)
			})
			if err != nil {
				return err
			}
			if !q.inTx {
				continue
			}
			if q.created == nil {
				q.created = map[taskKey]bool{}
			}
			for _, t := range created {
				q.created[taskKey{requestID, t}] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create tasks: %w", err)
	}
	return nil
}

// taskBatch tasks go in one INSERT: 4 parameters each.
const taskBatch = 500

// ListTasks implements store.Tasks.
func (q *queries) ListTasks(ctx context.Context, requestID string) ([]lethe.Task, error) {
	rows, err := q.query(ctx, `SELECT `+taskCols+` FROM tasks WHERE request_id = ? ORDER BY target`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	ts, err := collect(rows, scanTaskRows)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	return ts, nil
}

func (q *queries) getTask(ctx context.Context, requestID, target string) (lethe.Task, error) {
	t, err := scanTask(q.queryRow(ctx, `SELECT `+taskCols+` FROM tasks WHERE request_id = ? AND target = ?`, requestID, target))
	return t, notFound(err)
}

// StartTaskAttempt implements store.Tasks.
func (q *queries) StartTaskAttempt(ctx context.Context, requestID, target string, at time.Time) (lethe.Task, bool, error) {
	var row Row
	k := taskKey{requestID, target}
	if plan, ok := q.plans[k]; ok {
		// The plan SetTaskPlan kept goes in the same UPDATE; the other
		// tasks' pending writes first, as before any statement on tasks.
		delete(q.plans, k)
		delete(q.created, k)
		if err := q.flushTaskWrites(ctx); err != nil {
			return lethe.Task{}, false, fmt.Errorf("start task attempt: %w", err)
		}
		row = q.db.QueryRow(ctx, q.d.rebind(`UPDATE tasks
			SET state = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?), planned = ?, updated_at = ?
			WHERE request_id = ? AND target = ? AND state IN (?, ?)
			RETURNING `+taskCols),
			lethe.TaskRunning, q.ts(at), plan.doc, q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
	} else {
		row = q.queryRow(ctx, `UPDATE tasks
			SET state = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?), updated_at = ?
			WHERE request_id = ? AND target = ? AND state IN (?, ?)
			RETURNING `+taskCols,
			lethe.TaskRunning, q.ts(at), q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
	}
	t, err := scanTask(row)
	if err == nil {
		return t, true, nil
	}
	if err = notFound(err); !errors.Is(err, store.ErrNotFound) {
		return lethe.Task{}, false, fmt.Errorf("start task attempt: %w", err)
	}
	// Nothing changed: the task has ended, or does not exist.
	t, err = q.getTask(ctx, requestID, target)
	if err != nil {
		return lethe.Task{}, false, fmt.Errorf("start task attempt: %w", err)
	}
	return t, false, nil
}

// RecordTaskError implements store.Tasks. On a task that has ended it
// changes nothing: a late error must not overwrite the final one.
func (q *queries) RecordTaskError(ctx context.Context, requestID, target, msg string, at time.Time) error {
	n, err := q.exec(ctx, `UPDATE tasks SET last_error = ?, updated_at = ?
		WHERE request_id = ? AND target = ? AND state IN (?, ?)`,
		msg, q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
	if err != nil {
		return fmt.Errorf("record task error: %w", err)
	}
	if n == 0 {
		if _, err := q.getTask(ctx, requestID, target); err != nil {
			return fmt.Errorf("record task error: %w", err)
		}
	}
	return nil
}

// FinishTask implements store.Tasks.
func (q *queries) FinishTask(ctx context.Context, p store.FinishTaskParams) (bool, error) {
	requestID, target, state, report, lastError, at := p.RequestID, p.Target, p.State, p.Report, p.LastError, p.At
	if !state.Terminal() {
		return false, fmt.Errorf("finish task: %q is not a terminal state", state)
	}
	b, err := json.Marshal(report)
	if err != nil {
		return false, fmt.Errorf("finish task: encode report: %w", err)
	}
	k := taskKey{requestID, target}
	progress, merge := q.progress[k]
	if !merge {
		n, err := q.exec(ctx, `UPDATE tasks SET state = ?, report = ?, last_error = ?, finished_at = ?, updated_at = ?
			WHERE request_id = ? AND target = ? AND state IN (?, ?)`,
			state, string(b), lastError, q.ts(at), q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
		if err != nil {
			return false, fmt.Errorf("finish task: %w", err)
		}
		return n == 1, nil
	}
	// The progress AddTaskProgress computed for this task goes in the same
	// UPDATE; the other tasks' first, as before any statement on tasks.
	delete(q.progress, k)
	if err := q.flushPending(ctx, "tasks"); err != nil {
		return false, fmt.Errorf("finish task: %w", err)
	}
	n, err := q.db.Exec(ctx, q.d.rebind(`UPDATE tasks SET state = ?, report = ?, last_error = ?, finished_at = ?,
		progress = ?, updated_at = ?
		WHERE request_id = ? AND target = ? AND state IN (?, ?)`),
		state, string(b), lastError, q.ts(at), progress.doc, q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
	if err != nil {
		return false, fmt.Errorf("finish task: %w", err)
	}
	if n == 0 {
		// Not ended here: the progress is stored all the same.
		if err := q.storeProgress(ctx, k, progress); err != nil {
			return false, fmt.Errorf("finish task: %w", err)
		}
	}
	return n == 1, nil
}

// FailVerifiedTask implements store.Tasks.
func (q *queries) FailVerifiedTask(ctx context.Context, requestID, target, msg string, at time.Time) (bool, error) {
	n, err := q.exec(ctx, `UPDATE tasks SET state = ?, last_error = ?, updated_at = ?
		WHERE request_id = ? AND target = ? AND state = ?`,
		lethe.TaskFailed, msg, q.ts(at), requestID, target, lethe.TaskDone)
	if err != nil {
		return false, fmt.Errorf("fail verified task: %w", err)
	}
	return n == 1, nil
}

// CountOpenTasks implements store.Tasks.
func (q *queries) CountOpenTasks(ctx context.Context, requestID string) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT count(*) FROM tasks WHERE request_id = ? AND state IN (?, ?)`,
		requestID, lethe.TaskPending, lethe.TaskRunning).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count open tasks: %w", err)
	}
	return n, nil
}
