package pipeline

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// TEMPORARY stand-in for the Redrive seam main gets; deleted on merge.
func (p *Pipeline) Redrive(ctx context.Context, tx store.Tx, requestID string) error {
	req, err := tx.LockRequest(ctx, requestID)
	if err != nil {
		return fmt.Errorf("pipeline: redrive: %w", err)
	}
	plain := func(args river.JobArgs, prio int) river.InsertManyParams {
		return river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{MaxAttempts: riverMaxAttempts, Priority: prio}}
	}
	var jobs []river.InsertManyParams
	switch {
	case req.Stage == lethe.StageResolve:
		jobs = append(jobs, plain(resolveArgs{RequestID: req.ID}, priorityWork))
	case req.Stage == lethe.StageErase:
		tasks, err := tx.ListTasks(ctx, req.ID)
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if !t.State.Terminal() {
				jobs = append(jobs, plain(eraseArgs{RequestID: req.ID, Target: t.Target}, priorityWork))
			}
		}
		if len(jobs) == 0 {
			if _, err := p.advance(ctx, tx, req.ID, lethe.StatusRunning, lethe.StageErase, lethe.StatusRunning, lethe.StageVerify); err != nil {
				return err
			}
			jobs = append(jobs, plain(verifyArgs{RequestID: req.ID}, priorityClose))
		}
	case req.Stage == lethe.StageVerify:
		jobs = append(jobs, plain(verifyArgs{RequestID: req.ID}, priorityClose))
	case req.Stage == lethe.StageFinish:
		jobs = append(jobs, plain(finishArgs{RequestID: req.ID}, priorityClose))
	}
	return p.eng.insertTx(ctx, tx, jobs)
}
