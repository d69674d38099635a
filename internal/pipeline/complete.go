package pipeline

import (
	"context"
	"sync/atomic"

	"github.com/riverqueue/river/rivertype"
)

// A step completes its job inside the transaction that commits its
// change (commit), so the job ends exactly when its work does. River's
// executor would then complete it a second time once Work returns: one
// more statement per job, which finds the job no longer running and falls
// back to reading it. Work returns completedInTx instead of nil in that
// case, and River reports nothing for it.
//
// completedInTx is River's multi-job result (the executor checks for
// ErrorsByID and Jobs) listing no job: the executor then reports no result
// for any job, this one included. River's versions are pinned
// (go.mod); TestRequestStatementBudget fails if a version reports again,
// and a River that completed such a job as failed would fail every test
// of the pipeline.
type completedInTx struct{}

func (completedInTx) Error() string               { return "job completed in the transaction of its step" }
func (completedInTx) ErrorsByID() map[int64]error { return nil }
func (completedInTx) Jobs() []*rivertype.JobRow   { return nil }

type completionKey struct{}

// trackCompletion gives a job's context the flag commit sets once the job
// is completed in a committed transaction.
func trackCompletion(ctx context.Context) (context.Context, *atomic.Bool) {
	done := new(atomic.Bool)
	return context.WithValue(ctx, completionKey{}, done), done
}

func markCompleted(ctx context.Context) {
	if done, ok := ctx.Value(completionKey{}).(*atomic.Bool); ok {
		done.Store(true)
	}
}

// workResult is what Work returns for a step's result err: River must not
// complete again a job its step already completed.
func workResult(done *atomic.Bool, err error) error {
	if err == nil && done.Load() {
		return completedInTx{}
	}
	return err
}
