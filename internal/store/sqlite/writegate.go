package sqlite

import (
	"context"
	"database/sql/driver"
	"time"
)

// Every transaction on the pool is a writer (BEGIN IMMEDIATE, see dsn), and
// SQLite lets one in at a time. A connection that finds the lock taken
// waits in SQLite's busy handler, which sleeps and retries with growing
// pauses (up to 100ms each) rather than being woken when the lock is free:
// under contention (intake's group commits, the pipeline's steps and
// River's fetches and completions at once) the lock sat free while its
// waiters slept, and which waiter got it was luck. The write gate makes
// the process's transactions take turns first, in the order they asked
// (a Go channel's waiters are served first in, first out), so each BEGIN
// finds the lock free and the next one starts as soon as the previous one
// ends. Other processes on the same file (the CLI) still meet at SQLite's
// lock and busy handler.
//
// A transaction that waited busy_timeout at the gate goes on to BEGIN
// without it and is left to SQLite's busy handler as before, so a
// transaction begun while the same goroutine holds another (a mistake,
// see DefaultMaxOpenConns) still fails with SQLITE_BUSY instead of
// hanging, after twice busy_timeout.
type writeGate chan struct{}

// enter waits for the gate; false when it was not taken (ctx ended, or
// BusyTimeout passed), and then the caller must not leave it.
func (g writeGate) enter(ctx context.Context) bool {
	if g == nil {
		return false
	}
	select {
	case g <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(BusyTimeout)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

func (g writeGate) leave() { <-g }

// BeginTx begins a transaction through the write gate.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	held := c.cache.gate.enter(ctx)
	tx, err := c.modernConn.BeginTx(ctx, opts)
	if err != nil {
		if held {
			c.cache.gate.leave()
		}
		return nil, err
	}
	if !held {
		return tx, nil
	}
	return &gatedTx{Tx: tx, gate: c.cache.gate}, nil
}

// gatedTx leaves the write gate when its transaction ends, either way.
type gatedTx struct {
	driver.Tx
	gate writeGate
	done bool
}

func (t *gatedTx) Commit() error {
	err := t.Tx.Commit()
	t.end()
	return err
}

func (t *gatedTx) Rollback() error {
	err := t.Tx.Rollback()
	t.end()
	return err
}

func (t *gatedTx) end() {
	if !t.done {
		t.done = true
		t.gate.leave()
	}
}
