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
	st, _ := OpenStoreAt(tb, dialect)
	return st
}

// OpenStoreAt is OpenStore that also returns where the database lives (the
// SQLite file's path, the PostgreSQL DSN), for tests that open it again.
func OpenStoreAt(tb testing.TB, dialect string) (st MigratedStore, where string) {
	tb.Helper()
	where = NewDatabase(tb, dialect)
	return OpenMigrated(tb, dialect, where, Keyring(tb)), where
}

// NewDatabase returns where a new, empty database of dialect lives (a
// SQLite file's path, a PostgreSQL DSN on a schema of its own), removed
// after the test.
func NewDatabase(tb testing.TB, dialect string) string {
	tb.Helper()
	switch dialect {
	case "sqlite":
		return SQLitePath(tb)
	case "postgres":
		return PostgresDSN(tb)
	}
	tb.Fatalf("unknown dialect %q", dialect)
	return ""
}

// OpenMigrated opens one more store (its own pool) on the database of
// dialect at where, sealing with kr, and applies its migrations (a no-op
// when they already were). It is closed after the test.
func OpenMigrated(tb testing.TB, dialect, where string, kr *seal.Keyring) MigratedStore {
	tb.Helper()
	var st MigratedStore
	switch dialect {
	case "sqlite":
		st = OpenSQLite(tb, where, sqlite.Options{Keyring: kr})
	case "postgres":
		st = OpenPostgres(tb, where, postgres.Options{Keyring: kr})
	default:
		tb.Fatalf("unknown dialect %q", dialect)
	}
	if err := st.Migrate(context.Background()); err != nil {
		tb.Fatalf("%s store migrations: %v", dialect, err)
	}
	return st
}

// OpenSQLite opens the SQLite store at path without migrating it, sealing
// with Keyring unless opts has a keyring. It is closed after the test.
func OpenSQLite(tb testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	tb.Helper()
	if opts.Keyring == nil {
		opts.Keyring = Keyring(tb)
	}
	st, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("open sqlite store: %v", err)
	}
	closeAfter(tb, "sqlite", st)
	return st
}

// OpenPostgres opens the PostgreSQL store at dsn without migrating it,
// sealing with Keyring unless opts has a keyring, its pool capped at
// PostgresMaxConns unless opts sets a size, waiting while the server is
// full. It is closed after the test.
func OpenPostgres(tb testing.TB, dsn string, opts postgres.Options) *postgres.Store {
	tb.Helper()
	if opts.Keyring == nil {
		opts.Keyring = Keyring(tb)
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = PostgresMaxConns
	}
	if opts.Log == nil {
		opts.Log = fullServer.Log
	}
	st, err := postgres.Open(context.Background(), dsn, opts) // it waits while the server is full
	if err != nil {
		tb.Fatalf("open postgres store: %v", err)
	}
	closeAfter(tb, "postgres", st)
	return st
}

func closeAfter(tb testing.TB, dialect string, st interface{ Close() error }) {
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close %s store: %v", dialect, err)
		}
	})
}

// ForEachDialect runs test once per dialect, as parallel subtests named
// after it, each on a store of its own (OpenStore).
func ForEachDialect(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Helper()
	ForEachDialectName(t, func(t *testing.T, dialect string) {
		test(t, OpenStore(t, dialect))
	})
}

// ForEachDialectName runs test once per dialect, as parallel subtests
// named after it, for tests that open their stores themselves.
func ForEachDialectName(t *testing.T, test func(t *testing.T, dialect string)) {
	t.Helper()
	for _, dialect := range Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			test(t, dialect)
		})
	}
}
