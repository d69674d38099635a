// Package profiletest builds what the API surfaces and the clients service
// need in tests, on real stores: a fresh SQLite file, or a fresh schema on
// the PostgreSQL named by LETHE_TEST_POSTGRES (skipped when unset). Its
// Conformance suite is what every API surface (the native API, each
// profile) runs, as the stores and connectors run theirs.
package profiletest

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// Backend is a kind of store.
type Backend struct {
	Name string
	// Open returns a new, migrated, empty database and a function that
	// opens another connection pool to that same database (as a second
	// lethe process would). Everything is closed when the test ends.
	Open func(t *testing.T, k *seal.Keyring) (s store.Store, another func() store.Store)
}

// Backends lists a Backend per store dialect (testdb.Dialects).
func Backends() []Backend {
	var out []Backend
	for _, dialect := range testdb.Dialects {
		out = append(out, backend(dialect))
	}
	return out
}

// ForEach runs fn as a parallel subtest per backend.
func ForEach(t *testing.T, fn func(t *testing.T, b Backend)) {
	testdb.ForEachDialectName(t, func(t *testing.T, dialect string) {
		fn(t, backend(dialect))
	})
}

func backend(dialect string) Backend {
	return Backend{Name: dialect, Open: func(t *testing.T, k *seal.Keyring) (store.Store, func() store.Store) {
		t.Helper()
		where := testdb.NewDatabase(t, dialect)
		open := func() store.Store {
			t.Helper()
			return testdb.OpenMigrated(t, dialect, where, k)
		}
		return open(), open
	}}
}

// NopQueue is an intake.Enqueuer that enqueues nothing: the profiles'
// tests stop at intake, and the pipeline has its own.
type NopQueue struct{}

// EnqueueResolve implements intake.Enqueuer.
func (NopQueue) EnqueueResolve(context.Context, store.Tx, string) error { return nil }

// Env is one lethe instance's services over a store, all on one clock.
type Env struct {
	Store   store.Store
	Keyring *seal.Keyring
	Clock   *ratelimittest.Clock
	Clients *clients.Service
	Intake  *intake.Service
	Limiter ratelimit.Limiter
	// Throttle counts failed sign-ins on Clock; give it to every surface
	// built over the Env.
	Throttle *auth.Throttle
	Logger   *slog.Logger
}

// NewEnv builds the services over s. clock may be shared between Envs.
func NewEnv(t *testing.T, s store.Store, k *seal.Keyring, clock *ratelimittest.Clock) *Env {
	t.Helper()
	cs, err := clients.New(s, k, clients.Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{
		Store:    s,
		Keyring:  k,
		Clock:    clock,
		Clients:  cs,
		Intake:   intake.New(s, NopQueue{}, k, intake.Config{Now: clock.Now}),
		Limiter:  ratelimit.NewStore(s, clock.Now),
		Throttle: auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{}, clock.Now),
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

// OpenEnv opens a fresh store of backend b and builds the services over
// it, on a clock of their own.
func OpenEnv(t *testing.T, b Backend) *Env {
	t.Helper()
	k := testdb.Keyring(t)
	s, _ := b.Open(t, k)
	return NewEnv(t, s, k, ratelimittest.NewClock())
}

// testWriter sends log lines to t.Log so they show with the failing test.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// CountRequests returns how many requests the store holds (all clients).
func CountRequests(t *testing.T, s store.Store) int64 {
	t.Helper()
	m, err := s.CountRequestsByStatus(context.Background())
	if err != nil {
		t.Fatalf("count requests: %v", err)
	}
	var n int64
	for _, c := range m {
		n += c
	}
	return n
}
