package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/store"
)

// writeProbeBytes is the free space a SQLite store must have to be ready:
// less, and the next requests would fail on a full disk.
const writeProbeBytes = 64 << 10

// storeWritable returns a readiness check that the store takes writes
// now, not only reads: a full disk or a read-only file or mount leaves
// the database readable (so a ping passes) while every request fails.
// It commits one real write transaction each call, and on SQLite also
// writes and syncs a small file beside the database, which fails at once
// on a full or read-only filesystem. It recovers by itself: each call
// tries again.
func storeWritable(st store.Store, db string) func(context.Context) error {
	dir := ""
	if p := clients.KeyFilePath(db); p != "" && st.Dialect() == "sqlite" {
		dir = filepath.Dir(p)
	}
	return func(ctx context.Context) error {
		if dir != "" {
			if err := probeDir(dir); err != nil {
				return fmt.Errorf("store cannot write: %w", err)
			}
		}
		err := st.InTx(ctx, func(tx store.Tx) error {
			switch t := tx.Driver().(type) {
			case *sql.Tx:
				// Setting user_version (unused by lethe) to its own value
				// rewrites the database header: a write that changes
				// nothing.
				var v int64
				if err := t.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
					return err
				}
				_, err := t.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
				return err
			case pgx.Tx:
				// Assigning a transaction id is a write (refused by a
				// read-only server or transaction), its commit a WAL record.
				_, err := t.Exec(ctx, "SELECT txid_current()")
				return err
			default:
				return fmt.Errorf("store transaction is %T", t)
			}
		})
		if err != nil {
			return fmt.Errorf("store cannot write: %w", err)
		}
		return nil
	}
}

// probeDir writes, syncs and removes a file of writeProbeBytes in dir.
func probeDir(dir string) (err error) {
	f, err := os.CreateTemp(dir, ".lethe-ready-*")
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, os.Remove(f.Name()))
	}()
	if _, err := f.Write(make([]byte, writeProbeBytes)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
