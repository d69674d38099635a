package sqlite_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The write gate is left by every way a transaction ends: committed,
// rolled back, or never begun (its context ended first). A gate left held
// would make the next BEGIN wait at it until its context ends.
func TestWriteGateLeftOnEveryEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{Keyring: testdb.Keyring(t)})
	db := s.DB()
	mustExec(t, db, `CREATE TABLE gate_n (n INTEGER NOT NULL)`)
	for i := range 20 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("begin %d: %v", i, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gate_n VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatalf("end %d: %v", i, err)
		}
		gone, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := db.BeginTx(gone, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("begin with an ended context: %v, want context.Canceled", err)
		}
	}
	// With the gate held by a leaked transaction this would wait at the
	// gate until its deadline and fail.
	deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tx, err := db.BeginTx(deadline, nil)
	if err != nil {
		t.Fatalf("begin after every kind of end: %v", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM gate_n`).Scan(&n); err != nil || n != 10 {
		t.Fatalf("%d committed rows (%v), want 10", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}

// Many goroutines writing at once through the pool take turns at the gate:
// every transaction commits, none fails on the lock, and none of their
// read-modify-writes is lost.
func TestWriteGateConcurrentWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{Keyring: testdb.Keyring(t)})
	db := s.DB()
	mustExec(t, db, `CREATE TABLE gate_counter (n INTEGER NOT NULL)`)
	mustExec(t, db, `INSERT INTO gate_counter VALUES (0)`)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT n FROM gate_counter`).Scan(&n); err != nil {
					tx.Rollback()
					errs <- err
					return
				}
				if _, err := tx.ExecContext(ctx, `UPDATE gate_counter SET n = ?`, n+1); err != nil {
					tx.Rollback()
					errs <- err
					return
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT n FROM gate_counter`).Scan(&n); err != nil || n != writers*each {
		t.Fatalf("counter %d (%v), want %d", n, err, writers*each)
	}
}
