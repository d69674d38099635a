package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/audit"
)

// Defaults of Config, applied by New to zero fields.
const (
	DefaultWorkers           = 10
	DefaultMaxAttempts       = 10
	DefaultBackoffBase       = time.Second
	DefaultBackoffMax        = 10 * time.Minute
	DefaultJobTimeout        = 10 * time.Minute
	DefaultFetchPollInterval = 200 * time.Millisecond
	DefaultMaxResolveRounds  = 8
	DefaultMaxIdentities     = 1000
	DefaultConfirmWithin     = 24 * time.Hour
	DefaultPendingMinWait    = time.Second
)

// riverMaxAttempts is the attempt limit given to River for every lethe job.
// River discards a job at its limit, and a discarded job would leave its
// request open forever, so River must never give up before lethe has
// recorded an outcome: lethe's own MaxAttempts decides when a task or step
// fails, and beyond it only infrastructure errors (the database down) keep a
// job retrying, at most every BackoffMax.
const riverMaxAttempts = 1000

// Config tunes the pipeline. The zero value is usable: every field states
// its default, and New validates the result once.
type Config struct {
	// Workers is how many jobs this process runs at once.
	// Default 10; at most 10000.
	Workers int

	// MaxAttempts is how many times a step calls a target before giving up:
	// an erase task is marked failed, a resolve failure fails the request,
	// and a verify that keeps erroring fails the task. Errors marked with
	// connector.Permanent give up at once. Default 10; below 1000.
	MaxAttempts int

	// BackoffBase and BackoffMax shape the retry delay: BackoffBase doubled
	// per failed attempt, capped at BackoffMax, with jitter so that many
	// jobs failing together do not retry together.
	// Defaults 1s and 10m.
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// JobTimeout cancels a job's context when it runs longer.
	// Default 10m.
	JobTimeout time.Duration

	// RescueStuckJobsAfter is how long a job may stay running before River
	// treats it as lost (its process died) and runs it again. It must exceed
	// JobTimeout, or live jobs would be run twice. River checks for stuck
	// jobs every 30s, so a crashed job restarts within this plus 30s.
	// Default JobTimeout + 1m.
	RescueStuckJobsAfter time.Duration

	// NodeID names this process to River (its client ID, recorded in every
	// job it attempts). It must be stable across restarts of one node and
	// unique among live processes: at start, jobs left running under this
	// ID are rescued at once, since their process is gone. Default: a
	// random ID, so on PostgreSQL a node's orphans wait for
	// RescueStuckJobsAfter (SQLite rescues every running job at start).
	NodeID string

	// FetchPollInterval is how often idle workers look for new jobs. On
	// PostgreSQL inserts also wake them at once (LISTEN/NOTIFY); SQLite
	// relies on polling, so this bounds the pickup latency there.
	// Default 200ms.
	FetchPollInterval time.Duration

	// MaxResolveRounds caps the rounds of resolve: identities found in one
	// target are given to every target again until no new one turns up or
	// this many rounds ran. Default 8.
	MaxResolveRounds int

	// MaxIdentities caps how many identities one request may reach through
	// resolve. More almost certainly means a data map that links unrelated
	// people (deleting them would be a disaster), so the request fails
	// instead. Default 1000.
	MaxIdentities int

	// ConfirmWithin is how long a target that answers "pending" (see
	// connector.Pending) has to confirm an erasure, counted from the
	// task's first attempt; past it the task fails. A connector
	// implementing connector.Deadliner overrides it for its target.
	// Default 24h.
	ConfirmWithin time.Duration

	// PendingMinWait is the shortest wait between two calls of a pending
	// task, whatever the connector asks, so a connector answering
	// "pending, call again now" cannot spin. Default 1s.
	PendingMinWait time.Duration

	// Now is the clock for timestamps in the store. Default time.Now.
	Now func() time.Time

	// Callbacks tunes the delivery of status events to callback URLs;
	// each field states its default.
	Callbacks CallbackConfig
	// Suppression, when true, adds the identities of every completed
	// request to the suppression list as the request finishes. Default
	// false.
	Suppression bool

	// Signer signs the receipt issued when a request ends. Default nil:
	// no receipt (identities are dropped all the same).
	Signer *audit.Signer

	// Retention, when set, runs the purge as a periodic job (on the
	// elected leader only). Default nil: nothing is purged. See purge.go.
	Retention *Retention

	// Deadlines, when set, runs the deadline sweep as a periodic job (on
	// the elected leader only); zero fields take their defaults. Default
	// nil: no sweep. See deadlines.go.
	Deadlines *Deadlines

	// Review is the review policy: requests held for an operator's
	// approval, or for a waiting period, before erasure starts. Default:
	// nothing held. See review.go.
	Review Review

	// InsertOnly builds a pipeline that only enqueues jobs (the first job
	// of a request, a target's confirmation) and never works any: Start
	// and Stop do nothing, no periodic job is scheduled, and this process
	// never takes part in leader election. It is the API role of a split
	// deployment, where worker processes do the work. Default false.
	InsertOnly bool
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.RescueStuckJobsAfter == 0 {
		c.RescueStuckJobsAfter = c.JobTimeout + time.Minute
	}
	if c.FetchPollInterval == 0 {
		c.FetchPollInterval = DefaultFetchPollInterval
	}
	if c.MaxResolveRounds == 0 {
		c.MaxResolveRounds = DefaultMaxResolveRounds
	}
	if c.MaxIdentities == 0 {
		c.MaxIdentities = DefaultMaxIdentities
	}
	if c.ConfirmWithin == 0 {
		c.ConfirmWithin = DefaultConfirmWithin
	}
	if c.PendingMinWait == 0 {
		c.PendingMinWait = DefaultPendingMinWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Callbacks = c.Callbacks.withDefaults()
	c.Deadlines = c.Deadlines.withDefaults()
	c.Review = c.Review.withDefaults()
	return c
}

// validate reports every invalid field at once.
func (c Config) validate() error {
	var errs []error
	if c.Workers < 1 || c.Workers > 10000 {
		errs = append(errs, fmt.Errorf("Workers must be 1..10000, got %d", c.Workers))
	}
	if c.MaxAttempts < 1 || c.MaxAttempts >= riverMaxAttempts {
		errs = append(errs, fmt.Errorf("MaxAttempts must be 1..%d, got %d", riverMaxAttempts-1, c.MaxAttempts))
	}
	if c.BackoffBase <= 0 {
		errs = append(errs, fmt.Errorf("BackoffBase must be positive, got %s", c.BackoffBase))
	}
	if c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("BackoffMax (%s) must be at least BackoffBase (%s)", c.BackoffMax, c.BackoffBase))
	}
	if c.JobTimeout <= 0 {
		errs = append(errs, fmt.Errorf("JobTimeout must be positive, got %s", c.JobTimeout))
	}
	if c.RescueStuckJobsAfter <= c.JobTimeout {
		errs = append(errs, fmt.Errorf("RescueStuckJobsAfter (%s) must exceed JobTimeout (%s)", c.RescueStuckJobsAfter, c.JobTimeout))
	}
	if c.FetchPollInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("FetchPollInterval must be at least 1ms, got %s", c.FetchPollInterval))
	}
	if c.MaxResolveRounds < 1 {
		errs = append(errs, fmt.Errorf("MaxResolveRounds must be at least 1, got %d", c.MaxResolveRounds))
	}
	if c.MaxIdentities < 1 {
		errs = append(errs, fmt.Errorf("MaxIdentities must be at least 1, got %d", c.MaxIdentities))
	}
	if err := c.Callbacks.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retention.check(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Deadlines.check(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Review.check(); err != nil {
		errs = append(errs, err)
	}
	if c.ConfirmWithin <= 0 {
		errs = append(errs, fmt.Errorf("ConfirmWithin must be positive, got %s", c.ConfirmWithin))
	}
	if c.PendingMinWait <= 0 || c.PendingMinWait > c.ConfirmWithin {
		errs = append(errs, fmt.Errorf("PendingMinWait must be positive and at most ConfirmWithin, got %s", c.PendingMinWait))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pipeline config: %w", err)
	}
	return nil
}
