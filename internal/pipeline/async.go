package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Targets that confirm asynchronously (see connector.Pending):
//
//   - Erase answers Pending: the task stays running, its checkpoint is
//     stored (sealed), the attempt is taken back, and the job snoozes
//     (River does not count a snooze as an attempt either). The next run
//     hands the checkpoint back in Subject.Checkpoint.
//   - The target calls back (CompleteTask): the confirmation is recorded
//     with its counts, and a fresh erase job is inserted in the same
//     transaction so the task ends now rather than when the snoozed job
//     wakes; whichever job runs first ends it, the other finds it ended.
//   - Past the task's deadline (ConfirmWithin from its first attempt) a
//     pending answer fails the task. A pending answer is never taken as
//     done.

// resumeWait prepares an erase attempt on a task that may be waiting for
// its target: it fills s's checkpoint and callback token, or, when the
// target has already confirmed by callback, ends the task with that
// confirmation and reports ended (err is then the job's result).
func (p *Pipeline) resumeWait(ctx, bctx context.Context, job *rivertype.JobRow, task lethe.Task, conn connector.Connector, s *connector.Subject) (ended bool, err error) {
	w, err := p.st.TaskWait(ctx, task.RequestID, task.Target)
	if err != nil {
		return true, fmt.Errorf("erase %s: %w", task.Target, err)
	}
	if c := w.Completion; c != nil {
		tally, err := p.st.TaskTally(bctx, task.RequestID, task.Target)
		if err != nil {
			return true, fmt.Errorf("erase %s: %w", task.Target, err)
		}
		state, msg := lethe.TaskDone, ""
		if c.Failed {
			state, msg = lethe.TaskFailed, "target reported that the erasure failed"
			if c.Reason != "" {
				msg += ": " + redactString(c.Reason, s.Identities)
			}
		}
		return true, p.endTask(bctx, job, task.RequestID, task.Target, state, settle(tally), msg, task.Attempts, 0)
	}
	s.Checkpoint = w.Checkpoint
	if c, ok := conn.(connector.Completer); ok && c.AcceptsCallbacks() {
		token, err := p.st.TaskCallbackToken(ctx, task.RequestID, task.Target, p.now())
		if errors.Is(err, store.ErrConflict) {
			return true, nil // the task ended meanwhile: this job is a duplicate
		}
		if err != nil {
			return true, fmt.Errorf("erase %s: %w", task.Target, err)
		}
		s.CallbackToken = token
	}
	return false, nil
}

// waitPending handles a Pending answer from Erase: fail the task when its
// deadline has passed, otherwise record the checkpoint and snooze the job
// until the connector's next check (never past the deadline).
func (p *Pipeline) waitPending(ctx context.Context, job *rivertype.JobRow, task lethe.Task, conn connector.Connector, report lethe.Report, err error, ids []lethe.Identity, took time.Duration) error {
	var pe *connector.PendingError
	errors.As(err, &pe)
	requestID, target := task.RequestID, task.Target
	reason := redactString(pe.Reason, ids)
	within := p.confirmWithin(conn)
	now := p.now()
	deadline := task.StartedAt.Add(within)
	if !now.Before(deadline) {
		msg := "target did not confirm erasure within " + waitText(within)
		if reason != "" {
			msg += " (last answer: " + reason + ")"
		}
		// Only what the target confirmed: the plan part of the settled
		// report bounds work a crash may have hidden, but a target that
		// never confirmed did nothing lethe knows of.
		tally, err := p.st.TaskTally(ctx, requestID, target)
		if err != nil {
			return fmt.Errorf("erase %s: %w", target, err)
		}
		return p.endTask(ctx, job, requestID, target, lethe.TaskFailed, tally.Progress, msg, task.Attempts, took)
	}
	if len(pe.Checkpoint) > connector.MaxCheckpointLen {
		msg := fmt.Sprintf("connector returned a checkpoint of %d bytes, more than the limit of %d", len(pe.Checkpoint), connector.MaxCheckpointLen)
		return p.endTask(ctx, job, requestID, target, lethe.TaskFailed, report, msg, task.Attempts, took)
	}
	if reason == "" {
		reason = "waiting for the target to confirm the erasure"
	}
	err = p.st.InTx(ctx, func(tx store.Tx) error {
		first, ok, err := tx.SetTaskPending(ctx, requestID, target, pe.Checkpoint, "pending: "+reason, p.now())
		if err != nil || !ok || !first {
			return err
		}
		return p.audit(ctx, tx, requestID, "task.pending", map[string]string{
			"target": target,
			"reason": reason,
		})
	})
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	wait := min(max(pe.After, p.cfg.PendingMinWait), deadline.Sub(now))
	wait = max(wait, p.cfg.PendingMinWait)
	p.log.Debug("pipeline: target answered pending", slog.String("request_id", requestID),
		slog.String("target", target), slog.Duration("next_check", wait))
	return river.JobSnooze(wait)
}

func (p *Pipeline) confirmWithin(conn connector.Connector) time.Duration {
	if d, ok := conn.(connector.Deadliner); ok && d.ConfirmWithin() > 0 {
		return d.ConfirmWithin()
	}
	return p.cfg.ConfirmWithin
}

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
	task, err := p.st.FindTaskByCallbackToken(ctx, token)
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
		if err := p.audit(ctx, tx, task.RequestID, "task.confirmed", map[string]string{
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

// waitText writes whole hours and minutes without zero units:
// "24h", "90m" -> "1h30m", "45s".
func waitText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func truncateReason(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
