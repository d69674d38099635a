package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe/internal/connlimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// engine is the River client with its driver's transaction type hidden:
// River is generic over it (*sql.Tx for SQLite, pgx.Tx for PostgreSQL), and
// the rest of the package only ever sees a store.Tx.
type engine interface {
	start(ctx context.Context) error
	stop(ctx context.Context) error
	stopAndCancel(ctx context.Context) error
	insertTx(ctx context.Context, tx store.Tx, jobs []river.InsertManyParams) error
	// completeTx marks the running jobs completed inside tx, in one
	// statement, so each job ends exactly when the state change it made
	// commits.
	completeTx(ctx context.Context, tx store.Tx, jobs ...*rivertype.JobRow) error
	countByState(ctx context.Context) (map[rivertype.JobState]int, error)
}

type riverEngine[TDriver riverdriver.Driver[TTx], TTx any] struct {
	client *river.Client[TTx]
	// rescueAll says that every job found running at start was left by a
	// dead process (SQLite: one process per database); otherwise only those
	// last attempted under this client's own ID are.
	rescueAll bool
	log       *slog.Logger
	// inserted, when set, is told after each commit that inserted jobs
	// which queues got them (sqliteDriver.inserted).
	inserted func(queues []string)
}

func newRiverEngine[TDriver riverdriver.Driver[TTx], TTx any](driver TDriver, cfg *river.Config, rescueAll bool) (*riverEngine[TDriver, TTx], error) {
	c, err := river.NewClient[TTx](driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &riverEngine[TDriver, TTx]{client: c, rescueAll: rescueAll, log: log}, nil
}

// newEngine builds the River client on the store's own pool, so jobs live
// in the same database as requests and commit in the same transactions.
func newEngine(st store.Store, cfg *river.Config) (engine, error) {
	switch d := st.Dialect(); d {
	case "sqlite":
		db, ok := st.Driver().(*sql.DB)
		if !ok {
			return nil, fmt.Errorf("sqlite store: driver is %T, want *sql.DB", st.Driver())
		}
		d := newSQLiteDriver(riversqlite.New(db))
		e, err := newRiverEngine[*sqliteDriver, *sql.Tx](d, cfg, true)
		if err != nil {
			return nil, err
		}
		e.inserted = d.inserted
		return e, nil
	case "postgres":
		pool, ok := st.Driver().(*pgxpool.Pool)
		if !ok {
			return nil, fmt.Errorf("postgres store: driver is %T, want *pgxpool.Pool", st.Driver())
		}
		return newRiverEngine[*riverpgxv5.Driver, pgx.Tx](riverpgxv5.New(pool), cfg, false)
	default:
		return nil, fmt.Errorf("store dialect %q is not supported", d)
	}
}

// start rescues orphans and starts River, each waiting (up to
// connlimit.DefaultWait) while the server refuses connections as full:
// River's Start fails on its first refused connection, and starting it
// again after a failed Start is allowed.
func (e *riverEngine[TDriver, TTx]) start(ctx context.Context) error {
	w := connlimit.Waiter{What: "job queue", Log: e.log}
	if err := w.Do(ctx, e.rescueOrphans); err != nil {
		return err
	}
	return w.Do(ctx, e.client.Start)
}

// rescueBatch is how many orphaned jobs one rescue query handles.
const rescueBatch = 500

// rescueOrphans makes the jobs a dead process left running available again
// before this one starts fetching, so a restart resumes them at once
// instead of after River's RescueStuckJobsAfter. Orphans are every running
// job on SQLite (it refuses a second process), and on PostgreSQL those last
// attempted by this client's ID: a stable node ID (Config.NodeID) is what
// lets a restarted node recognise its own; other nodes' jobs wait for
// River's rescuer. It goes through River's driver (the rescuer's own
// queries), so it follows River's schema as River migrates it; like the
// rescuer, a job at its attempt limit is discarded and one whose
// cancellation was asked for is cancelled.
func (e *riverEngine[TDriver, TTx]) rescueOrphans(ctx context.Context) error {
	exec := e.client.Driver().GetExecutor()
	now := time.Now().UTC()
	// Every job still running was attempted before now: the horizon takes
	// them all, whatever their age.
	horizon := now.Add(time.Minute)
	id := e.client.ID()
	var after int64
	rescued := 0
	defer func() {
		if rescued > 0 {
			e.log.Info("rescued jobs left running by a stopped process", "jobs", rescued)
		}
	}()
	for {
		jobs, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{AfterID: after, Max: rescueBatch, Schema: e.client.Schema(), StuckHorizon: horizon})
		if err != nil {
			return fmt.Errorf("rescue orphaned jobs: %w", err)
		}
		p := &riverdriver.JobRescueManyParams{Schema: e.client.Schema(), StuckHorizon: horizon}
		for _, job := range jobs {
			after = job.ID
			if !e.rescueAll && (len(job.AttemptedBy) == 0 || job.AttemptedBy[len(job.AttemptedBy)-1] != id) {
				continue
			}
			msg, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(job.Attempt, 0), Error: "orphaned by a process that stopped; rescued at restart"})
			if err != nil {
				return fmt.Errorf("rescue orphaned jobs: %w", err)
			}
			var meta struct {
				CancelAttemptedAt time.Time `json:"cancel_attempted_at"`
			}
			_ = json.Unmarshal(job.Metadata, &meta) // unreadable metadata: no cancellation asked
			state, finalized, at := rivertype.JobStateAvailable, (*time.Time)(nil), now
			switch {
			case !meta.CancelAttemptedAt.IsZero():
				state, finalized, at = rivertype.JobStateCancelled, &now, job.ScheduledAt
			case job.Attempt >= job.MaxAttempts:
				state, finalized, at = rivertype.JobStateDiscarded, &now, job.ScheduledAt
			}
			p.ID = append(p.ID, job.ID)
			p.Error = append(p.Error, msg)
			p.FinalizedAt = append(p.FinalizedAt, finalized)
			p.ScheduledAt = append(p.ScheduledAt, at)
			p.State = append(p.State, string(state))
		}
		if len(p.ID) > 0 {
			if _, err := exec.JobRescueMany(ctx, p); err != nil {
				return fmt.Errorf("rescue orphaned jobs: %w", err)
			}
			rescued += len(p.ID)
		}
		if len(jobs) < rescueBatch {
			return nil
		}
	}
}
func (e *riverEngine[TDriver, TTx]) stop(ctx context.Context) error { return e.client.Stop(ctx) }
func (e *riverEngine[TDriver, TTx]) stopAndCancel(ctx context.Context) error {
	return e.client.StopAndCancel(ctx)
}

func (e *riverEngine[TDriver, TTx]) tx(tx store.Tx) (TTx, error) {
	t, ok := tx.Driver().(TTx)
	if !ok {
		var zero TTx
		return zero, fmt.Errorf("store transaction is %T, want %T", tx.Driver(), zero)
	}
	return t, nil
}

func (e *riverEngine[TDriver, TTx]) insertTx(ctx context.Context, tx store.Tx, jobs []river.InsertManyParams) error {
	if len(jobs) == 0 {
		return nil
	}
	t, err := e.tx(tx)
	if err != nil {
		return err
	}
	if _, err := e.client.InsertManyTx(ctx, t, jobs); err != nil {
		return fmt.Errorf("insert jobs: %w", err)
	}
	if e.inserted != nil {
		queues := jobQueues(jobs)
		tx.AfterCommit(func() { e.inserted(queues) })
	}
	return nil
}

// jobQueues lists the queues jobs go to, each once.
func jobQueues(jobs []river.InsertManyParams) []string {
	var out []string
	for _, j := range jobs {
		q := river.QueueDefault
		if a, ok := j.Args.(river.JobArgsWithInsertOpts); ok && a.InsertOpts().Queue != "" {
			q = a.InsertOpts().Queue
		}
		if j.InsertOpts != nil && j.InsertOpts.Queue != "" {
			q = j.InsertOpts.Queue
		}
		if !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

func (e *riverEngine[TDriver, TTx]) completeTx(ctx context.Context, tx store.Tx, jobs ...*rivertype.JobRow) error {
	if len(jobs) == 0 {
		return nil
	}
	t, err := e.tx(tx)
	if err != nil {
		return err
	}
	// What river.JobCompleteTx does for one job, for all of them: lethe's
	// workers record no metadata, so there is none to merge.
	now := time.Now()
	params := &riverdriver.JobSetStateIfRunningManyParams{Schema: e.client.Schema()}
	for _, job := range jobs {
		if job.State != rivertype.JobStateRunning {
			return fmt.Errorf("complete job %d: it is %s, not running", job.ID, job.State)
		}
		one := riverdriver.JobSetStateCompleted(job.ID, now, nil)
		params.ID = append(params.ID, one.ID)
		params.Attempt = append(params.Attempt, one.Attempt)
		params.ErrData = append(params.ErrData, one.ErrData)
		params.FinalizedAt = append(params.FinalizedAt, one.FinalizedAt)
		params.MetadataDoMerge = append(params.MetadataDoMerge, false)
		params.MetadataUpdates = append(params.MetadataUpdates, nil)
		params.ScheduledAt = append(params.ScheduledAt, one.ScheduledAt)
		params.State = append(params.State, one.State)
	}
	rows, err := e.client.Pilot().JobSetStateIfRunningMany(ctx, e.client.Driver().UnwrapExecutor(t), params)
	if err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	if len(rows) != len(jobs) {
		// A job not running in the table any more: another process
		// rescued and took it. Its change must not commit under this one.
		return fmt.Errorf("complete jobs: %d of %d were still running", len(rows), len(jobs))
	}
	return nil
}

func (e *riverEngine[TDriver, TTx]) countByState(ctx context.Context) (map[rivertype.JobState]int, error) {
	return e.client.Driver().GetExecutor().JobCountByAllStates(ctx, &riverdriver.JobCountByAllStatesParams{Schema: e.client.Schema()})
}

// riverMigrator is rivermigrate.Migrator with its transaction type hidden.
type riverMigrator interface {
	Migrate(ctx context.Context, direction rivermigrate.Direction, opts *rivermigrate.MigrateOpts) (*rivermigrate.MigrateResult, error)
	Validate(ctx context.Context, opts *rivermigrate.ValidateOpts) (*rivermigrate.ValidateResult, error)
}

func newMigrator(st store.Store) (riverMigrator, error) {
	cfg := &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)}
	switch d := st.Dialect(); d {
	case "sqlite":
		db, ok := st.Driver().(*sql.DB)
		if !ok {
			return nil, fmt.Errorf("sqlite store: driver is %T, want *sql.DB", st.Driver())
		}
		return rivermigrate.New(riversqlite.New(db), cfg)
	case "postgres":
		pool, ok := st.Driver().(*pgxpool.Pool)
		if !ok {
			return nil, fmt.Errorf("postgres store: driver is %T, want *pgxpool.Pool", st.Driver())
		}
		return rivermigrate.New(riverpgxv5.New(pool), cfg)
	default:
		return nil, fmt.Errorf("store dialect %q is not supported", d)
	}
}

// Migrate brings River's tables (river_job, river_leader, ...) in the
// store's database up to date. Run it after the store's own migrations and
// before New; running it again is harmless, so while the server refuses
// connections as full it is run again (up to connlimit.DefaultWait). On
// PostgreSQL the tables go to the first schema of the connections'
// search_path, like the store's. Waits are logged through slog.Default().
func Migrate(ctx context.Context, st store.Store) error {
	return migrate(ctx, st, nil)
}

// migrate is Migrate logging waits to log (nil: slog.Default()).
func migrate(ctx context.Context, st store.Store, log *slog.Logger) error {
	m, err := newMigrator(st)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	err = connlimit.Waiter{What: "job queue migrations", Log: log}.Do(ctx, func(ctx context.Context) error {
		_, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return nil
}

// CheckMigrations returns an error when River's tables are missing or
// behind this binary, for readiness checks and `lethe migrate --check`.
func CheckMigrations(ctx context.Context, st store.Store) error {
	m, err := newMigrator(st)
	if err != nil {
		return fmt.Errorf("check river migrations: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("check river migrations: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("river migrations are not applied: %s", strings.Join(res.Messages, "; "))
	}
	return nil
}
