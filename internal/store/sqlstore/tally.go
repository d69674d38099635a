package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// readTally reads a task's tally and state; with lock, the row stays locked
// until the transaction ends (a no-op on sqlite, whose writers already
// hold the database's lock).
func (q *queries) readTally(ctx context.Context, requestID, target string, lock bool) (store.TaskTally, lethe.TaskState, error) {
	var (
		tally    store.TaskTally
		state    lethe.TaskState
		planned  *string
		progress string
	)
	query := `SELECT state, planned, progress FROM tasks WHERE request_id = ? AND target = ?`
	if lock {
		query += q.d.ForUpdate
	}
	if err := q.queryRow(ctx, query, requestID, target).Scan(&state, &planned, &progress); err != nil {
		return tally, "", notFound(err)
	}
	if planned != nil {
		tally.Planned = true
		if err := json.Unmarshal([]byte(*planned), &tally.Plan); err != nil {
			return tally, "", fmt.Errorf("decode plan of task %s: %w", target, err)
		}
	}
	var doc progressDoc
	if err := json.Unmarshal([]byte(progress), &doc); err != nil {
		return tally, "", fmt.Errorf("decode progress of task %s: %w", target, err)
	}
	tally.Progress, tally.Recorded = lethe.Report{Items: doc.Items}, doc.Recorded
	return tally, state, nil
}

// progressDoc is the stored form of a task's progress: the report's
// fields, and how many attempts' reports it sums (rows written before
// recorded existed read as 0, which errs towards marking a count a
// lower bound).
type progressDoc struct {
	Items    []lethe.ReportItem `json:"items"`
	Recorded int                `json:"recorded,omitempty"`
}

// TaskTally implements store.Tasks.
func (q *queries) TaskTally(ctx context.Context, requestID, target string) (store.TaskTally, error) {
	t, _, err := q.readTally(ctx, requestID, target, false)
	if err != nil {
		return t, fmt.Errorf("task tally: %w", err)
	}
	return t, nil
}

// SetTaskPlan implements store.Tasks.
func (q *queries) SetTaskPlan(ctx context.Context, requestID, target string, plan lethe.Report, at time.Time) (bool, error) {
	b, err := json.Marshal(plan)
	if err != nil {
		return false, fmt.Errorf("set task plan: encode plan: %w", err)
	}
	k := taskKey{requestID, target}
	if q.created[k] {
		// Created by this transaction and not written since: its plan is
		// unset and it is pending. The plan is stored by StartTaskAttempt's
		// UPDATE when that comes next, as the pipeline's does, or before
		// the transaction's next statement on tasks, or by the commit.
		if _, ok := q.plans[k]; ok {
			return false, nil
		}
		if q.plans == nil {
			q.plans = map[taskKey]pendingProgress{}
		}
		q.plans[k] = pendingProgress{doc: string(b), at: q.ts(at)}
		return true, nil
	}
	n, err := q.exec(ctx, `UPDATE tasks SET planned = ?, updated_at = ?
		WHERE request_id = ? AND target = ? AND planned IS NULL AND state IN (?, ?)`,
		string(b), q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
	if err != nil {
		return false, fmt.Errorf("set task plan: %w", err)
	}
	if n == 0 {
		// Say ErrNotFound for a missing task, as the other task methods do.
		if _, err := q.getTask(ctx, requestID, target); err != nil {
			return false, fmt.Errorf("set task plan: %w", err)
		}
	}
	return n == 1, nil
}

// AddTaskProgress implements store.Tasks. The sum is computed here rather
// than in SQL so that both databases apply the same rules (store.AddReport)
// to the same JSON; the row lock makes the read-modify-write safe against a
// duplicate job adding at the same moment.
func (q *queries) AddTaskProgress(ctx context.Context, requestID, target string, r lethe.Report, at time.Time) (store.TaskTally, error) {
	var tally store.TaskTally
	err := q.atomic(ctx, func(q *queries) error {
		t, state, err := q.readTally(ctx, requestID, target, true)
		if err != nil {
			return err
		}
		tally = t
		if state.Terminal() {
			return nil
		}
		tally.Progress = store.AddReport(t.Progress, r)
		tally.Recorded++
		b, err := json.Marshal(progressDoc{Items: tally.Progress.Items, Recorded: tally.Recorded})
		if err != nil {
			return fmt.Errorf("encode progress: %w", err)
		}
		// Stored by the transaction's next statement on tasks, or by
		// FinishTask in its own UPDATE when that is the next one: the
		// pipeline records an attempt's report and ends the task together.
		if q.progress == nil {
			q.progress = map[taskKey]pendingProgress{}
		}
		q.progress[taskKey{requestID, target}] = pendingProgress{doc: string(b), at: q.ts(at)}
		return nil
	})
	if err != nil {
		return store.TaskTally{}, fmt.Errorf("add task progress: %w", err)
	}
	return tally, nil
}

// taskKey names a task.
type taskKey struct{ requestID, target string }

// pendingProgress is a task's progress computed by AddTaskProgress, under
// the row's lock, or its plan (SetTaskPlan), not stored yet.
type pendingProgress struct {
	doc string
	at  any
}

// flushTaskWrites stores the plans and progress the transaction computed
// and has not stored yet.
func (q *queries) flushTaskWrites(ctx context.Context) error {
	for k, p := range q.plans {
		delete(q.plans, k)
		delete(q.created, k)
		_, err := q.db.Exec(ctx, q.d.rebind(`UPDATE tasks SET planned = ?, updated_at = ? WHERE request_id = ? AND target = ?`),
			p.doc, p.at, k.requestID, k.target)
		if err != nil {
			return fmt.Errorf("set task plan: %w", err)
		}
	}
	if len(q.progress) == 0 {
		return nil
	}
	pending := q.progress
	q.progress = nil
	for k, p := range pending {
		if err := q.storeProgress(ctx, k, p); err != nil {
			return err
		}
	}
	return nil
}

func (q *queries) storeProgress(ctx context.Context, k taskKey, p pendingProgress) error {
	_, err := q.db.Exec(ctx, q.d.rebind(`UPDATE tasks SET progress = ?, updated_at = ? WHERE request_id = ? AND target = ?`),
		p.doc, p.at, k.requestID, k.target)
	if err != nil {
		return fmt.Errorf("add task progress: %w", err)
	}
	return nil
}
