package pipeline

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Job kinds. They are stored in River's table, so renaming one orphans the
// jobs of that kind in every existing database.
const (
	kindResolve = "lethe.resolve"
	kindErase   = "lethe.erase"
	kindVerify  = "lethe.verify"
	kindFinish  = "lethe.finish"
)

// Priorities: River runs lower numbers first, and jobs of one priority in
// order of scheduling. Verify and finish only close requests whose erasure
// is over, so they go first: a backlog of slow erasures must not hold up
// requests that are done. Resolve and erase share a priority so that, under
// a backlog, requests advance in the order they came in rather than every
// new request being resolved before any older one is erased.
const (
	priorityClose = 1
	priorityWork  = 2
)

// Job arguments hold ids only; River stores them in plaintext.

type resolveArgs struct {
	RequestID string `json:"request_id"`
}

func (resolveArgs) Kind() string { return kindResolve }

type eraseArgs struct {
	RequestID string `json:"request_id"`
	Target    string `json:"target"`
}

func (eraseArgs) Kind() string { return kindErase }

type verifyArgs struct {
	RequestID string `json:"request_id"`
}

func (verifyArgs) Kind() string { return kindVerify }

type finishArgs struct {
	RequestID string `json:"request_id"`
}

func (finishArgs) Kind() string { return kindFinish }

// insertOpts makes every job unique by its args: a second insert of the same
// step for the same request (and target) is skipped by River while the first
// exists. This is the second guard; the first is the (status, stage)
// compare-and-set that every insert shares a transaction with, which is what
// makes duplicates harmless even when they do get in.
func insertOpts(priority int) *river.InsertOpts {
	return &river.InsertOpts{
		MaxAttempts: riverMaxAttempts,
		Priority:    priority,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: stepUniqueStates},
	}
}

func resolveJob(requestID string) river.InsertManyParams {
	return river.InsertManyParams{Args: resolveArgs{RequestID: requestID}, InsertOpts: insertOpts(priorityWork)}
}

func eraseJob(requestID, target string) river.InsertManyParams {
	return river.InsertManyParams{Args: eraseArgs{RequestID: requestID, Target: target}, InsertOpts: insertOpts(priorityWork)}
}

func verifyJob(requestID string) river.InsertManyParams {
	return river.InsertManyParams{Args: verifyArgs{RequestID: requestID}, InsertOpts: insertOpts(priorityClose)}
}

func finishJob(requestID string) river.InsertManyParams {
	return river.InsertManyParams{Args: finishArgs{RequestID: requestID}, InsertOpts: insertOpts(priorityClose)}
}

// periodicJob schedules args every interval, and once at start. River
// inserts periodic jobs on the elected leader only, so however many lethe
// processes share the database each run happens once, not once per
// process.
func periodicJob(every time.Duration, args river.JobArgs, priority int) *river.PeriodicJob {
	return river.NewPeriodicJob(
		river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) {
			return args, &river.InsertOpts{
				MaxAttempts: 5,
				Priority:    priority,
				// A run still queued or running makes another pointless.
				UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
					rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
					rivertype.JobStateRunning, rivertype.JobStateScheduled,
				}},
			}
		},
		&river.PeriodicJobOpts{RunOnStart: true},
	)
}

type resolveWorker struct {
	river.WorkerDefaults[resolveArgs]
	p *Pipeline
}

func (w *resolveWorker) Work(ctx context.Context, job *river.Job[resolveArgs]) error {
	return w.p.resolve(ctx, job.JobRow, job.Args.RequestID)
}

type eraseWorker struct {
	river.WorkerDefaults[eraseArgs]
	p *Pipeline
}

func (w *eraseWorker) Work(ctx context.Context, job *river.Job[eraseArgs]) error {
	return w.p.erase(ctx, job.JobRow, job.Args.RequestID, job.Args.Target)
}

type verifyWorker struct {
	river.WorkerDefaults[verifyArgs]
	p *Pipeline
}

func (w *verifyWorker) Work(ctx context.Context, job *river.Job[verifyArgs]) error {
	return w.p.verify(ctx, job.JobRow, job.Args.RequestID)
}

type finishWorker struct {
	river.WorkerDefaults[finishArgs]
	p *Pipeline
}

func (w *finishWorker) Work(ctx context.Context, job *river.Job[finishArgs]) error {
	return w.p.finish(ctx, job.JobRow, job.Args.RequestID)
}
