package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/store/storetest"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	return testdb.OpenSQLite(t, path, sqlite.Options{})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		return testdb.OpenStore(t, "sqlite")
	})
}

// One connection is what River's driver suggests; callers may choose it,
// so the store must not need a second connection anywhere.
func TestConformanceSingleConn(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{MaxOpenConns: 1})
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReadyNeedsMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := testdb.SQLitePath(t)
	s := openStore(t, path)
	if err := s.Ready(ctx); err == nil {
		t.Fatal("Ready before Migrate succeeded")
	}
	// Ready must not have created goose's table (it is a probe).
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'lethe_goose_db_version'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("Ready wrote to the database: %d, %v", n, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready after Migrate: %v", err)
	}
	// A second process on the same file sees the schema.
	if err := openStore(t, path).Ready(ctx); err != nil {
		t.Fatalf("Ready from a second pool: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, testdb.SQLitePath(t))
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"synchronous", "1"},
	} {
		// Ask on several connections: every one of the pool must be set up.
		for range 3 {
			var got string
			if err := s.DB().QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
			}
		}
	}
}

// The path goes into a URI; characters that mean something there must
// still name the file given.
func TestPathWithURICharacters(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "my dir #1 ?x", "le the%20.db")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := openStore(t, p).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("database is not at the path given: %v", err)
	}
}
