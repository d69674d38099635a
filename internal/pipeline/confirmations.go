package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Confirmations are the inbound side of asynchronous targets: a target
// that answered Pending later confirms the erasure itself, at
// POST /v1/tasks/{token}/complete. The confirmation is recorded with its
// counts, and a fresh erase job is inserted in the same transaction so the
// task ends now rather than when the snoozed job wakes; whichever job runs
// first ends it, the other finds it ended. Status events sent to a
// request's callback_url are the opposite, outbound flow.

// wakeEraseJob is an erase job without uniqueness: the task's own erase job
// is usually still there, snoozed, and a unique insert would be skipped.
// Duplicates are harmless (the task's state decides), so it may run beside
// it.
func wakeEraseJob(requestID, target string) river.InsertManyParams {
	return river.InsertManyParams{
		Args:       eraseArgs{RequestID: requestID, Target: target},
		InsertOpts: &river.InsertOpts{MaxAttempts: riverMaxAttempts, Priority: priorityWork},
	}
}

// CompleteTask takes a target's confirmation that it finished an erasure,
// sent to POST /v1/tasks/{token}/complete: the token names the task, the
// target's connector authenticates the body with the target's own secret,
// and the confirmation is recorded for the task's erase job, which is woken
// at once. Repeating a confirmation is harmless. Errors are *lethe.Error
// for the caller; anything else is internal.
func (p *Pipeline) CompleteTask(ctx context.Context, token string, h http.Header, body []byte) error {
	task, err := p.st.FindTaskByConfirmationToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return lethe.Errorf(lethe.ENOTFOUND, "no task has this callback token")
	}
	if err != nil {
		return fmt.Errorf("complete task: %w", err)
	}
	// Authenticate before saying anything about the task's state.
	completer, ok := p.byName[task.Target].(connector.Completer)
	if !ok || !completer.AcceptsCallbacks() {
		return lethe.Errorf(lethe.ENOTFOUND, "no task has this callback token")
	}
	c, err := completer.VerifyCompletion(h, body)
	if err != nil {
		var le *lethe.Error
		if errors.As(err, &le) {
			return le
		}
		return lethe.Errorf(lethe.EINVALID, "callback rejected")
	}
	switch task.State {
	case lethe.TaskDone:
		return nil // a repeated confirmation
	case lethe.TaskFailed, lethe.TaskSkipped:
		return lethe.Errorf(lethe.ECONFLICT, "the task has already ended as %s", task.State)
	}
	sc := store.TaskCompletion{Failed: c.Failed, Reason: truncateReason(c.Reason, maxErrorLen), Report: c.Report}
	err = p.st.InTx(ctx, func(tx store.Tx) error {
		ok, err := tx.RecordTaskCompletion(ctx, task.RequestID, task.Target, sc, p.now())
		if err != nil || !ok {
			return err // !ok: a repeat, or the task ended meanwhile
		}
		if !c.Failed {
			if _, err := tx.AddTaskProgress(ctx, task.RequestID, task.Target, c.Report, p.now()); err != nil {
				return err
			}
		}
		if err := p.audit(ctx, tx, task.RequestID, lethe.EventTaskConfirmed, map[string]string{
			"target": task.Target,
			"via":    "callback",
			"failed": strconv.FormatBool(c.Failed),
		}); err != nil {
			return err
		}
		return p.eng.insertTx(ctx, tx, []river.InsertManyParams{wakeEraseJob(task.RequestID, task.Target)})
	})
	if err != nil {
		return fmt.Errorf("complete task: %w", err)
	}
	return nil
}

func truncateReason(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
