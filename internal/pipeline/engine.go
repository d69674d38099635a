package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

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
	// completeTx marks the running job completed inside tx, so the job ends
	// exactly when the state change it made commits.
	completeTx(ctx context.Context, tx store.Tx, job *rivertype.JobRow) error
	countByState(ctx context.Context) (map[rivertype.JobState]int, error)
}

type riverEngine[TDriver riverdriver.Driver[TTx], TTx any] struct {
	client *river.Client[TTx]
}

func newRiverEngine[TDriver riverdriver.Driver[TTx], TTx any](driver TDriver, cfg *river.Config) (*riverEngine[TDriver, TTx], error) {
	c, err := river.NewClient[TTx](driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &riverEngine[TDriver, TTx]{client: c}, nil
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
		return newRiverEngine[*riversqlite.Driver, *sql.Tx](riversqlite.New(db), cfg)
	case "postgres":
		pool, ok := st.Driver().(*pgxpool.Pool)
		if !ok {
			return nil, fmt.Errorf("postgres store: driver is %T, want *pgxpool.Pool", st.Driver())
		}
		return newRiverEngine[*riverpgxv5.Driver, pgx.Tx](riverpgxv5.New(pool), cfg)
	default:
		return nil, fmt.Errorf("store dialect %q is not supported", d)
	}
}

func (e *riverEngine[TDriver, TTx]) start(ctx context.Context) error { return e.client.Start(ctx) }
func (e *riverEngine[TDriver, TTx]) stop(ctx context.Context) error  { return e.client.Stop(ctx) }
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
	return nil
}

// anyArgs stands in for a job's args type where only its row matters:
// JobCompleteTx is generic over the args but uses nothing of them.
type anyArgs struct{}

func (anyArgs) Kind() string { return "lethe.any" }

func (e *riverEngine[TDriver, TTx]) completeTx(ctx context.Context, tx store.Tx, job *rivertype.JobRow) error {
	t, err := e.tx(tx)
	if err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[TDriver](ctx, t, &river.Job[anyArgs]{JobRow: job}); err != nil {
		return fmt.Errorf("complete job %d: %w", job.ID, err)
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
// before New; running it again is harmless. On PostgreSQL the tables go to
// the first schema of the connections' search_path, like the store's.
func Migrate(ctx context.Context, st store.Store) error {
	m, err := newMigrator(st)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
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
