package pipeline

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Redrive inserts, inside tx, the job that carries requestID on from its
// current stored state: the caller (an operator's retry, or an approval
// after a hold) has just put the request back at status running (received
// before resolve) with its stage, and its tasks to redo back at pending.
// The job commits with that change or not at all. Each step's own
// compare-and-set decides what runs, so a redrive of a request that is
// already moving is harmless.
func (p *Pipeline) Redrive(ctx context.Context, tx store.Tx, requestID string) error {
	req, err := tx.LockRequest(ctx, requestID)
	if err != nil {
		return fmt.Errorf("pipeline: redrive: %w", err)
	}
	jobs, err := p.redriveJobs(ctx, tx, req)
	if err != nil {
		return fmt.Errorf("pipeline: redrive: %w", err)
	}
	if err := p.eng.insertTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("pipeline: redrive: %w", err)
	}
	return nil
}

// redriveJobs are the jobs that carry req on from where it is stored.
// They are inserted without uniqueness: the request's earlier jobs of the
// same kind may still sit completed in River's table, and a unique insert
// would be skipped for them.
func (p *Pipeline) redriveJobs(ctx context.Context, tx store.Tx, req *lethe.Request) ([]river.InsertManyParams, error) {
	switch {
	case req.Status.Terminal():
		return nil, fmt.Errorf("request is %s: put it back to running before redriving it", req.Status)
	case req.Stage == lethe.StageResolve:
		return []river.InsertManyParams{redriveJob(resolveArgs{RequestID: req.ID}, priorityFirst)}, nil
	case req.Status != lethe.StatusRunning:
		return nil, fmt.Errorf("request is %s at stage %s: nothing carries it on from there", req.Status, req.Stage)
	case req.Stage == lethe.StageErase:
		tasks, err := tx.ListTasks(ctx, req.ID)
		if err != nil {
			return nil, err
		}
		var jobs []river.InsertManyParams
		for _, t := range tasks {
			if !t.State.Terminal() {
				jobs = append(jobs, redriveJob(eraseArgs{RequestID: req.ID, Target: t.Target}, priorityWork))
			}
		}
		if len(jobs) == 0 {
			// Every task has ended: the step that would have moved the
			// request on to verify is the one to redo.
			if _, err := p.advance(ctx, tx, req.ID, lethe.StatusRunning, lethe.StageErase, lethe.StatusRunning, lethe.StageVerify); err != nil {
				return nil, err
			}
			return []river.InsertManyParams{redriveJob(verifyArgs{RequestID: req.ID}, priorityClose)}, nil
		}
		return jobs, nil
	case req.Stage == lethe.StageVerify:
		return []river.InsertManyParams{redriveJob(verifyArgs{RequestID: req.ID}, priorityClose)}, nil
	case req.Stage == lethe.StageFinish:
		return []river.InsertManyParams{redriveJob(finishArgs{RequestID: req.ID}, priorityClose)}, nil
	default:
		return nil, fmt.Errorf("request is %s at stage %s: nothing carries it on from there", req.Status, req.Stage)
	}
}

func redriveJob(args river.JobArgs, priority int) river.InsertManyParams {
	return river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{MaxAttempts: riverMaxAttempts, Priority: priority}}
}
