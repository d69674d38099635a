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
// order of scheduling. A request's own job (resolve) does all of a request
// whose targets answer at once; the jobs that carry a request on after it
// (an erase retried or waiting for its target, verify, finish) go before
// any new request's first job, so under a backlog requests finish in the
// order they came in instead of every new one being started before any
// older one ends. Verify and finish, which only close requests whose
// erasure is over, go first of all.
const (
	priorityClose = 1
	priorityWork  = 2
	priorityFirst = 3
)

// Job arguments hold ids only; River stores them in plaintext.

// resolveArgs is a request's own job: it resolves the request and, for
// the targets that answer at once, erases, verifies and finishes it too
// (see inline.go). Resume marks one queued to carry the request on from a
// later stage (Redrive); without it, a first attempt that finds the
// request past resolve is a duplicate.
type resolveArgs struct {
	RequestID string `json:"request_id"`
	Resume    bool   `json:"resume,omitempty"`
}

func (resolveArgs) Kind() string { return kindResolve }

type eraseArgs struct {
	RequestID string `json:"request_id"`
	Target    string `json:"target"`
}

func (eraseArgs) Kind() string { return kindErase }

// verifyArgs is verify's job. Tried counts the verifications a request's
// own job already made (see inline.go), which count towards MaxAttempts
// like this job's own attempts.
type verifyArgs struct {
	RequestID string `json:"request_id"`
	Tried     int    `json:"tried,omitempty"`
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
	return river.InsertManyParams{Args: resolveArgs{RequestID: requestID}, InsertOpts: insertOpts(priorityFirst)}
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
	ctx, done := trackCompletion(ctx)
	return workResult(done, w.p.resolve(ctx, job.JobRow, job.Args.RequestID, job.Args.Resume))
}

type eraseWorker struct {
	river.WorkerDefaults[eraseArgs]
	p *Pipeline
}

func (w *eraseWorker) Work(ctx context.Context, job *river.Job[eraseArgs]) error {
	ctx, done := trackCompletion(ctx)
	return workResult(done, w.p.erase(ctx, job.JobRow, job.Args.RequestID, job.Args.Target))
}

type verifyWorker struct {
	river.WorkerDefaults[verifyArgs]
	p *Pipeline
}

func (w *verifyWorker) Work(ctx context.Context, job *river.Job[verifyArgs]) error {
	ctx, done := trackCompletion(ctx)
	return workResult(done, w.p.verify(ctx, job.JobRow, job.Args.RequestID, job.Args.Tried))
}

type finishWorker struct {
	river.WorkerDefaults[finishArgs]
	p *Pipeline
}

func (w *finishWorker) Work(ctx context.Context, job *river.Job[finishArgs]) error {
	ctx, done := trackCompletion(ctx)
	return workResult(done, w.p.finish(ctx, job.JobRow, job.Args.RequestID))
}
