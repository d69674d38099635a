package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// checkpointAAD and tokenAAD bind sealed values to their task, so a value
// copied into another row does not open.
func checkpointAAD(requestID, target string) []byte {
	return []byte("lethe/task_waits/checkpoint\x00" + requestID + "\x00" + target)
}

func tokenAAD(requestID, target string) []byte {
	return []byte("lethe/task_waits/token\x00" + requestID + "\x00" + target)
}

func (q *queries) tokenHash(token string) string { return q.kr.Hash("task-callback-token", token) }

// callbackTokenBytes is the callback token's entropy: 256 bits, so guessing
// one is hopeless and the endpoint needs no rate limit of its own.
const callbackTokenBytes = 32

// TaskWait implements store.TaskWaits.
func (q *queries) TaskWait(ctx context.Context, requestID, target string) (store.TaskWait, error) {
	var w store.TaskWait
	var sealed []byte
	var completion *string
	err := q.queryRow(ctx, `SELECT checkpoint_sealed, polls, pending_since, completion
		FROM task_waits WHERE request_id = ? AND target = ?`, requestID, target).
		Scan(&sealed, &w.Polls, dbTime{&w.PendingSince}, &completion)
	if errors.Is(notFound(err), store.ErrNotFound) {
		return store.TaskWait{}, nil
	}
	if err != nil {
		return w, fmt.Errorf("task wait: %w", err)
	}
	if sealed != nil {
		b, err := q.kr.Open(sealed, checkpointAAD(requestID, target))
		if err != nil {
			return w, fmt.Errorf("task wait: open checkpoint: %w", err)
		}
		w.Checkpoint = string(b)
	}
	if completion != nil {
		var c store.TaskCompletion
		if err := json.Unmarshal([]byte(*completion), &c); err != nil {
			return w, fmt.Errorf("task wait: decode completion: %w", err)
		}
		w.Completion = &c
	}
	return w, nil
}

// SetTaskPending implements store.TaskWaits.
func (q *queries) SetTaskPending(ctx context.Context, p store.SetTaskPendingParams) (first, ok bool, err error) {
	requestID, target, checkpoint, reason, at := p.RequestID, p.Target, p.Checkpoint, p.Reason, p.At
	var sealed any // NULL, not an empty blob, when there is no checkpoint
	if checkpoint != "" {
		sealed = q.kr.Seal([]byte(checkpoint), checkpointAAD(requestID, target))
	}
	err = q.atomic(ctx, func(q *queries) error {
		// has_wait: the task's end now has a wait to clean up (00027).
		n, err := q.exec(ctx, `UPDATE tasks
			SET attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, last_error = ?, updated_at = ?,
				has_wait = TRUE
			WHERE request_id = ? AND target = ? AND state IN (?, ?)`,
			reason, q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
		if err != nil || n == 0 {
			return err
		}
		ok = true
		var polls int
		err = q.queryRow(ctx, `INSERT INTO task_waits (request_id, target, checkpoint_sealed, polls, pending_since, updated_at)
			VALUES (?, ?, ?, 1, ?, ?)
			ON CONFLICT (request_id, target) DO UPDATE SET
				checkpoint_sealed = excluded.checkpoint_sealed,
				polls = task_waits.polls + 1,
				pending_since = COALESCE(task_waits.pending_since, excluded.pending_since),
				updated_at = excluded.updated_at
			RETURNING polls`,
			requestID, target, sealed, q.ts(at), q.ts(at)).Scan(&polls)
		first = polls == 1
		return err
	})
	if err != nil {
		return false, false, fmt.Errorf("set task pending: %w", err)
	}
	return first, ok, nil
}

// TaskConfirmationToken implements store.TaskWaits.
func (q *queries) TaskConfirmationToken(ctx context.Context, requestID, target string, at time.Time) (string, error) {
	var token string
	err := q.atomic(ctx, func(q *queries) error {
		// Marking the task as one with a wait (00027) locks its row until
		// the token is stored, so a concurrent end of the task either
		// comes first (no row here: conflict) or waits and then drops the
		// token with the rest of the wait.
		n, err := q.exec(ctx, `UPDATE tasks SET has_wait = TRUE
			WHERE request_id = ? AND target = ? AND state IN (?, ?)`,
			requestID, target, lethe.TaskPending, lethe.TaskRunning)
		if err != nil {
			return err
		}
		if n == 0 {
			if _, err := q.getTask(ctx, requestID, target); err != nil {
				return err
			}
			return store.ErrConflict
		}
		fresh := seal.RandomToken(callbackTokenBytes)
		// A token already there wins (WHERE), so concurrent first calls
		// agree on one; the read below returns whichever was stored.
		_, err = q.exec(ctx, `INSERT INTO task_waits (request_id, target, token_hash, token_sealed, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (request_id, target) DO UPDATE SET
				token_hash = excluded.token_hash, token_sealed = excluded.token_sealed, updated_at = excluded.updated_at
			WHERE task_waits.token_hash IS NULL`,
			requestID, target, q.tokenHash(fresh), q.kr.Seal([]byte(fresh), tokenAAD(requestID, target)), q.ts(at))
		if err != nil {
			return err
		}
		var sealed []byte
		if err := q.queryRow(ctx, `SELECT token_sealed FROM task_waits WHERE request_id = ? AND target = ?`,
			requestID, target).Scan(&sealed); err != nil {
			return notFound(err)
		}
		if sealed == nil {
			return store.ErrConflict // the task ended meanwhile
		}
		b, err := q.kr.Open(sealed, tokenAAD(requestID, target))
		if err != nil {
			return err
		}
		token = string(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("task callback token: %w", err)
	}
	return token, nil
}

// FindTaskByConfirmationToken implements store.TaskWaits.
func (q *queries) FindTaskByConfirmationToken(ctx context.Context, token string) (lethe.Task, error) {
	if token == "" {
		return lethe.Task{}, fmt.Errorf("find task by callback token: %w", store.ErrNotFound)
	}
	var requestID, target string
	err := q.queryRow(ctx, `SELECT request_id, target FROM task_waits WHERE token_hash = ?`, q.tokenHash(token)).
		Scan(&requestID, &target)
	if err != nil {
		return lethe.Task{}, fmt.Errorf("find task by callback token: %w", notFound(err))
	}
	t, err := q.getTask(ctx, requestID, target)
	if err != nil {
		return lethe.Task{}, fmt.Errorf("find task by callback token: %w", err)
	}
	return t, nil
}

// RecordTaskCompletion implements store.TaskWaits.
func (q *queries) RecordTaskCompletion(ctx context.Context, requestID, target string, c store.TaskCompletion, at time.Time) (bool, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("record task completion: encode: %w", err)
	}
	n, err := q.exec(ctx, `UPDATE task_waits SET completion = ?, updated_at = ?
		WHERE request_id = ? AND target = ? AND completion IS NULL
		AND EXISTS (SELECT 1 FROM tasks WHERE tasks.request_id = task_waits.request_id
			AND tasks.target = task_waits.target AND tasks.state IN (?, ?))`,
		string(b), q.ts(at), requestID, target, lethe.TaskPending, lethe.TaskRunning)
	if err != nil {
		return false, fmt.Errorf("record task completion: %w", err)
	}
	return n == 1, nil
}
