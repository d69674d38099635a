// Package pipeline carries out deletion requests: durable River jobs that
// resolve a request's identities, erase them on every target in parallel,
// verify nothing is left and finish the request.
//
// Jobs live in the store's own database (River shares its pool), so a
// state change, its audit event and the next job commit in one
// transaction. Every step starts with a compare-and-set on the request's
// (status, stage) in that transaction, which is what makes each step take
// effect exactly once even though River runs jobs at least once: a
// duplicated, retried or rescued job finds the request already moved on and
// completes without doing anything.
//
//	resolve ──> erase (one job per target) ──> verify ──> finish
//
// Job arguments carry ids only (request id, target name), never identity
// values: River keeps them in its table in plaintext, while identities are
// sealed in the store.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// Target is one configured system the pipeline erases from.
type Target struct {
	Name string
	Conn connector.Connector
}

// Observer is told about outcomes, for metrics. Calls happen after the
// change committed, from worker goroutines, so implementations must be safe
// for concurrent use and fast.
type Observer interface {
	// TaskFinished is called when an erase task ends (done or failed);
	// d is the duration of its last attempt's connector call.
	TaskFinished(target string, state lethe.TaskState, attempts int, d time.Duration)
	// RequestFinished is called when a request reaches a terminal status
	// through the pipeline (completed or failed).
	RequestFinished(status lethe.Status)
}

type nopObserver struct{}

func (nopObserver) TaskFinished(string, lethe.TaskState, int, time.Duration) {}
func (nopObserver) RequestFinished(lethe.Status)                             {}

// Pipeline runs the jobs of deletion requests.
type Pipeline struct {
	cfg     Config
	st      store.Store
	targets []Target
	byName  map[string]connector.Connector
	log     *slog.Logger
	obs     Observer
	eng     engine
	// callbackClient delivers status events to callback URLs.
	callbackClient *http.Client
	// end is how requests end.
	end terminate.Path

	// afterBulkTask, when set (by tests), runs after each task a bulk
	// retry took up; an error stops the bulk retry there, as a crash would.
	afterBulkTask func() error
	// batchers erase the queued subjects of a target whose connector
	// erases several at once (connector.BatchEraser) in one batch.
	batchers map[string]*eraseBatcher
	// verifiers verify them together likewise (connector.BatchVerifier).
	verifiers map[string]*verifyBatcher
	// starts and ends share the transactions of requests going straight
	// through (inline.go) that start erasing, or end, together.
	starts, ends *txGroup

	// stopping is set by Stop: a connector call cut short by shutdown is
	// not the target's fault, so it must not count towards failing a task.
	stopping atomic.Bool
}

// fetchCooldown is the least time between two fetches of jobs. River's
// default (100ms) capped a process at Workers jobs per 100ms whatever the
// work: a finished job's slot, and the next step it queued, waited for the
// next fetch, so with four jobs per request a process drained about 25
// requests/s with 10 workers (docs/load.md). Fetching sooner only costs a
// query when jobs are waiting.
const fetchCooldown = 5 * time.Millisecond

// hardStopTimeout bounds how long Stop waits, after its own deadline, for
// jobs whose contexts it cancelled to return.
const hardStopTimeout = 10 * time.Second

// New builds a pipeline on st's database; it does not start working until
// Start. River's tables must exist (Migrate). log and obs may be nil.
func New(cfg Config, st store.Store, targets []Target, log *slog.Logger, obs Observer) (*Pipeline, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("pipeline: store is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	p := &Pipeline{
		cfg:     cfg,
		st:      st,
		targets: append([]Target(nil), targets...),
		byName:  make(map[string]connector.Connector, len(targets)),
		log:     log,
		obs:     obs,
	}
	complete := func(ctx context.Context, tx store.Tx, jobs ...*rivertype.JobRow) error {
		return p.eng.completeTx(ctx, tx, jobs...)
	}
	p.starts, p.ends = newTxGroup(st, cfg.Workers, complete), newTxGroup(st, cfg.Workers, complete)
	for _, t := range targets {
		if t.Name == "" || t.Conn == nil {
			return nil, errors.New("pipeline: every target needs a Name and a Conn")
		}
		if _, dup := p.byName[t.Name]; dup {
			return nil, fmt.Errorf("pipeline: target %q listed twice", t.Name)
		}
		p.byName[t.Name] = t.Conn
		if be, ok := t.Conn.(connector.BatchEraser); ok && answersAtOnce(t.Conn) {
			if p.batchers == nil {
				p.batchers = map[string]*eraseBatcher{}
			}
			p.batchers[t.Name] = newEraseBatcher(log, t.Name, be, cfg.Workers)
		}
		if bv, ok := t.Conn.(connector.BatchVerifier); ok && answersAtOnce(t.Conn) {
			if p.verifiers == nil {
				p.verifiers = map[string]*verifyBatcher{}
			}
			p.verifiers[t.Name] = newVerifyBatcher(log, t.Name, bv, cfg.Workers)
		}
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &resolveWorker{p: p})
	river.AddWorker(workers, &eraseWorker{p: p})
	river.AddWorker(workers, &verifyWorker{p: p})
	river.AddWorker(workers, &finishWorker{p: p})
	river.AddWorker(workers, &callbackWorker{p: p})
	p.callbackClient = newCallbackClient(cfg.Callbacks)
	p.end = terminate.Path{Signer: cfg.Signer, Suppress: cfg.Suppression, Events: p}
	river.AddWorker(workers, &purgeWorker{p: p})
	river.AddWorker(workers, &deadlineSweepWorker{p: p})
	river.AddWorker(workers, &holdSweepWorker{p: p})
	river.AddWorker(workers, &bulkRetryWorker{p: p})

	queues := map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}, queueCallbacks: {MaxWorkers: cfg.Callbacks.Workers}}
	periodic := append(append(p.purgeJobs(), p.deadlineJobs()...), p.reviewJobs()...)
	if cfg.InsertOnly {
		// A River client without queues is insert-only: it never fetches
		// jobs, runs no maintenance and never stands for leader.
		queues, periodic = nil, nil
	}

	eng, err := newEngine(st, &river.Config{
		// River's cooldown must not exceed the poll interval.
		FetchCooldown:        min(cfg.FetchPollInterval, fetchCooldown),
		FetchPollInterval:    cfg.FetchPollInterval,
		ID:                   cfg.NodeID,
		JobTimeout:           cfg.JobTimeout,
		Logger:               log,
		MaxAttempts:          riverMaxAttempts,
		Queues:               queues,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		RetryPolicy:          retryPolicy{base: cfg.BackoffBase, max: cfg.BackoffMax},
		Workers:              workers,
		PeriodicJobs:         periodic,
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p.eng = eng
	return p, nil
}

// Start begins working jobs in the background. Cancelling ctx stops hard
// (running jobs are cancelled); use Stop for a graceful shutdown.
func (p *Pipeline) Start(ctx context.Context) error {
	if p.cfg.InsertOnly {
		return nil
	}
	p.stopping.Store(false)
	if err := p.eng.start(ctx); err != nil {
		return fmt.Errorf("pipeline: start: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones until ctx is done;
// then it cancels what is still running and waits up to 10s more for those
// jobs to return. Cancelled jobs are retried later (by this process after a
// restart or by another one), so nothing is lost either way.
func (p *Pipeline) Stop(ctx context.Context) error {
	if p.cfg.InsertOnly {
		return nil
	}
	p.stopping.Store(true)
	err := p.eng.stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("pipeline: stop: %w", err)
	}
	p.log.Warn("pipeline: jobs still running at shutdown deadline; cancelling them")
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardStopTimeout)
	defer cancel()
	if err := p.eng.stopAndCancel(hctx); err != nil {
		return fmt.Errorf("pipeline: stop: %w", err)
	}
	return nil
}

// QueueDepth returns how many jobs wait to run (available, scheduled or
// waiting for a retry), for the queue-depth metric.
func (p *Pipeline) QueueDepth(ctx context.Context) (int64, error) {
	counts, err := p.eng.countByState(ctx)
	if err != nil {
		return 0, fmt.Errorf("pipeline: queue depth: %w", err)
	}
	return int64(counts[rivertype.JobStateAvailable] + counts[rivertype.JobStateRetryable] + counts[rivertype.JobStateScheduled]), nil
}

// EnqueueResolve inserts the first job of a request inside tx, the
// transaction that inserts the request, so both commit or neither does.
func (p *Pipeline) EnqueueResolve(ctx context.Context, tx store.Tx, requestID string) error {
	return p.EnqueueResolves(ctx, tx, []string{requestID})
}

// EnqueueResolves inserts the first jobs of several requests inside tx in
// one insert (intake.ManyEnqueuer: a group commit's requests).
func (p *Pipeline) EnqueueResolves(ctx context.Context, tx store.Tx, requestIDs []string) error {
	jobs := make([]river.InsertManyParams, len(requestIDs))
	for i, id := range requestIDs {
		jobs[i] = resolveJob(id)
	}
	if err := p.eng.insertTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("pipeline: enqueue resolve: %w", err)
	}
	return nil
}

// Ready returns nil when the database answers and River's tables are
// current, for the readiness endpoint.
func (p *Pipeline) Ready(ctx context.Context) error {
	if err := CheckMigrations(ctx, p.st); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

func (p *Pipeline) now() time.Time { return p.cfg.Now() }
