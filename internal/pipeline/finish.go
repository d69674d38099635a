package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// finish closes the request: completed when every task is done or
// skipped, failed otherwise.
func (p *Pipeline) finish(ctx context.Context, job *rivertype.JobRow, requestID string) error {
	var status lethe.Status
	_, err := p.commit(ctx, job, "finish", func(tx store.Tx) (bool, error) {
		req, err := tx.LockRequest(ctx, requestID)
		if errors.Is(err, store.ErrNotFound) {
			p.log.Warn("pipeline: finish job for a missing request", slog.String("request_id", requestID))
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if req.Status != lethe.StatusRunning || req.Stage != lethe.StageFinish {
			return false, nil // already finished: a duplicate
		}
		tasks, err := tx.ListTasks(ctx, requestID)
		if err != nil {
			return false, err
		}
		to := lethe.StatusCompleted
		var failed int
		var rows int64
		for _, t := range tasks {
			if t.State != lethe.TaskDone && t.State != lethe.TaskSkipped {
				to = lethe.StatusFailed
				failed++
			}
			rows += t.Report.Total()
		}
		details := map[string]string{
			"tasks":  strconv.Itoa(len(tasks)),
			"failed": strconv.Itoa(failed),
			"rows":   strconv.FormatInt(rows, 10),
		}
		// Only a completed request can say what it found: a failed one
		// may have missed data in the target that failed.
		var outcome lethe.Outcome
		if to == lethe.StatusCompleted {
			outcome = lethe.MatchOutcome(tasks)
			details["outcome"] = string(outcome)
		}
		ok, err := p.Terminate(ctx, tx, req, tasks, terminate.Ending{To: to, At: p.now(), Details: details, Outcome: outcome})
		if ok {
			status = to
		}
		return ok, err
	})
	if err != nil {
		return err
	}
	if status != "" {
		p.log.Info("pipeline: request finished", slog.String("request_id", requestID), slog.String("status", string(status)))
		p.obs.RequestFinished(status)
	}
	return nil
}
