package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFilesPrivate: the database file, and the WAL and shared-memory files
// SQLite makes beside it, are readable by their owner only, whatever the
// umask.
func TestFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	path := filepath.Join(t.TempDir(), "lethe.db")
	ctx := context.Background()
	st := openStore(t, path)
	if err := st.Migrate(ctx); err != nil { // writes, so the WAL exists
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", filepath.Base(p), err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), m)
		}
	}
}
