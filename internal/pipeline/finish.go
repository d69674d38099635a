package pipeline

import (
	"context"
	"errors"
	"log/slog"

	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
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
		to, ok, err := p.finishTx(ctx, tx, req, tasks)
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
