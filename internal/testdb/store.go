package testdb

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
)

// Dialects are the store dialects store-backed tests run on.
var Dialects = []string{"sqlite", "postgres"}

// Keyring returns the keyring test stores seal with. Its key is fixed, so
// a test can open the same database twice, or hash a value the way its
// store did.
func Keyring(tb testing.TB) *seal.Keyring {
	tb.Helper()
	kr, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// MigratedStore is a store that can apply its own migrations.
type MigratedStore interface {
	store.Store
	Migrate(ctx context.Context) error
}

// OpenStore opens a store of dialect on a database of its own (a new
// SQLite file, a new PostgreSQL schema), sealing with Keyring, with its
// migrations applied. It is closed, and the database dropped, after the
// test.
func OpenStore(tb testing.TB, dialect string) MigratedStore {
	tb.Helper()
	ctx := context.Background()
	kr := Keyring(tb)
	var (
		st  MigratedStore
		err error
	)
	switch dialect {
	case "sqlite":
		st, err = sqlite.Open(ctx, SQLitePath(tb), sqlite.Options{Keyring: kr})
	case "postgres":
		st, err = postgres.Open(ctx, PostgresDSN(tb), postgres.Options{Keyring: kr, MaxConns: PostgresMaxConns})
	default:
		tb.Fatalf("unknown dialect %q", dialect)
	}
	if err != nil {
		tb.Fatalf("open %s store: %v", dialect, err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close %s store: %v", dialect, err)
		}
	})
	if err := st.Migrate(ctx); err != nil {
		tb.Fatalf("%s store migrations: %v", dialect, err)
	}
	return st
}

// ForEachDialect runs test once per dialect, as parallel subtests named
// after it, each on a store of its own (OpenStore).
func ForEachDialect(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, dialect := range Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			test(t, OpenStore(t, dialect))
		})
	}
}
