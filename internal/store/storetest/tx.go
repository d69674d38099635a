package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func testInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityEmail, Value: "tx@example.com"})
	err := s.InTx(ctx, func(tx store.Tx) error {
		switch d := tx.Driver().(type) {
		case *sql.Tx, pgx.Tx:
		default:
			t.Errorf("Tx.Driver() is %T, want *sql.Tx or pgx.Tx", d)
		}
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		if err := tx.CreateTasks(ctx, r.ID, []string{"db"}, t0); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: t0, Actor: lethe.ActorSystem, Type: "request.received"}); err != nil {
			return err
		}
		if _, err := tx.GetRequest(ctx, r.ID, store.Scope{All: true}); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		return errRollback
	})
	wantErr(t, "InTx", err, errRollback)
	assertNothing := func(when string) {
		t.Helper()
		if _, err := s.GetRequest(ctx, r.ID, store.Scope{All: true}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: request persisted: %v", when, err)
		}
		if ts, _ := s.ListTasks(ctx, r.ID); len(ts) != 0 {
			t.Errorf("%s: tasks persisted", when)
		}
		if es, _ := s.ListAudit(ctx, r.ID); len(es) != 0 {
			t.Errorf("%s: audit persisted", when)
		}
		if ids, _ := s.RequestIdentities(ctx, r.ID); len(ids) != 0 {
			t.Errorf("%s: identities persisted", when)
		}
	}
	assertNothing("after error")

	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic inside InTx was swallowed")
			}
		}()
		_ = s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.CreateRequest(ctx, r); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	assertNothing("after panic")

	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: t0, Actor: lethe.ActorSystem, Type: "request.received"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRequest(ctx, r.ID, store.Scope{All: true}); err != nil {
		t.Errorf("committed request: %v", err)
	}
	if es, _ := s.ListAudit(ctx, r.ID); len(es) != 1 {
		t.Errorf("committed audit: %d events", len(es))
	}
	// The store is still usable after all of this (no leaked locks).
	if n, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "after-tx", Limit: 1, Window: time.Minute, Block: time.Minute, Now: t0}); err != nil || n != 1 {
		t.Errorf("store after transactions: %v, %v", n, err)
	}
}

// testAfterCommit: hooks run once the writes are visible to others, in
// the order registered, and never for a transaction that rolled back.
func testAfterCommit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var ran []string
	r := newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityEmail, Value: "after@example.com"})
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		tx.AfterCommit(func() { ran = append(ran, "rolled back") })
		return errRollback
	})
	wantErr(t, "InTx", err, errRollback)
	if len(ran) != 0 {
		t.Errorf("hooks of a rolled back transaction ran: %v", ran)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		tx.AfterCommit(func() {
			// Read outside the transaction: the hook must see its writes.
			if _, err := s.GetRequest(ctx, r.ID, store.Scope{All: true}); err != nil {
				ran = append(ran, "before commit")
				return
			}
			ran = append(ran, "first")
		})
		tx.AfterCommit(func() { ran = append(ran, "second") })
		if len(ran) != 0 {
			t.Errorf("hooks ran before the transaction ended: %v", ran)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ran) != "[first second]" {
		t.Errorf("hooks ran %v; want [first second]", ran)
	}
}
