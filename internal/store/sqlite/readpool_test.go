package sqlite_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// A read outside a transaction must not wait for writers: every
// connection of the writers' pool is taken by a writer waiting at BEGIN
// IMMEDIATE for a lock another process holds, as happens under load
// behind one slow writer, and the store still answers a read (the view
// GET /v1/deletion-requests/{id} serves) while they wait. Before the
// readers had their own pool the read waited for a writer's connection
// until its context ended.
func TestReadNotQueuedBehindWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := testdb.SQLitePath(t)
	s := openStore(t, path)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// Another process's writer holds the write lock.
	other, err := sqlite.Connector(path)
	if err != nil {
		t.Fatal(err)
	}
	odb := sql.OpenDB(other)
	defer odb.Close()
	lock, err := odb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			lock.Rollback()
		}
	}()

	// Writers fill this store's pool, each waiting for the lock.
	errs := make(chan error, sqlite.DefaultMaxOpenConns)
	for range sqlite.DefaultMaxOpenConns {
		go func() {
			tx, err := s.DB().BeginTx(ctx, nil)
			if err == nil {
				err = tx.Rollback()
			}
			errs <- err
		}()
	}
	for s.DB().Stats().InUse < sqlite.DefaultMaxOpenConns {
		time.Sleep(time.Millisecond)
	}

	// Bounded only so that a queued read fails the test instead of hanging
	// it; the writers wait up to BusyTimeout, longer than this.
	rctx, cancel := context.WithTimeout(ctx, sqlite.BusyTimeout/2)
	defer cancel()
	if _, err := s.ListCallbackEvents(rctx, "no-such-request"); err != nil {
		t.Fatalf("read while writers wait for the lock: %v", err)
	}
	if n := s.DB().Stats().InUse; n != sqlite.DefaultMaxOpenConns {
		t.Fatalf("the read ran after a writer gave up its connection (%d in use)", n)
	}

	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	released = true
	for range sqlite.DefaultMaxOpenConns {
		if err := <-errs; err != nil {
			t.Errorf("writer: %v", err)
		}
	}
}
