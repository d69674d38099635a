package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1, r2 := newID(t), newID(t)
	var appended []lethe.AuditEvent
	for i, rid := range []string{r1, r2, r1, "", r1, r2} {
		e := &lethe.AuditEvent{
			RequestID: rid,
			Time:      t0.Add(time.Duration(i) * time.Second),
			Actor:     lethe.ActorSystem,
			Type:      lethe.EventType(fmt.Sprintf("event.%d", i)),
		}
		if i == 2 {
			e.Actor, e.ActorID = lethe.ActorClient, "c1"
			e.Details = map[string]string{"target": "db", "rows": "3"}
		}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		if e.Seq == 0 || e.Hash == "" {
			t.Fatalf("AppendAudit did not fill Seq and Hash: %+v", e)
		}
		appended = append(appended, *e)
	}
	for _, rid := range []string{r1, r2, ""} {
		got, err := s.ListAudit(ctx, rid)
		if err != nil {
			t.Fatal(err)
		}
		var want []lethe.AuditEvent
		for _, e := range appended {
			if e.RequestID == rid {
				want = append(want, e)
			}
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListAudit(%q) (-want +got):\n%s", rid, diff)
		}
		verifyChain(t, got)
	}
	if got, err := s.ListAudit(ctx, newID(t)); err != nil || len(got) != 0 {
		t.Errorf("ListAudit(unknown) = %v, %v", got, err)
	}
	if err := s.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r1}); err == nil {
		t.Error("AppendAudit without type, actor and time succeeded")
	}
}

// verifyChain checks each event links to the previous one and that its
// hash covers its content.
func verifyChain(t *testing.T, es []lethe.AuditEvent) {
	t.Helper()
	prev := ""
	for i, e := range es {
		if e.PrevHash != prev {
			t.Errorf("event %d: PrevHash %q, want %q", i, e.PrevHash, prev)
		}
		if h := store.AuditHash(e.PrevHash, &e); h != e.Hash {
			t.Errorf("event %d: Hash %q, recomputed %q", i, e.Hash, h)
		}
		if i > 0 && e.Seq <= es[i-1].Seq {
			t.Errorf("event %d: Seq %d not after %d", i, e.Seq, es[i-1].Seq)
		}
		prev = e.Hash
	}
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	rid := newID(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e := &lethe.AuditEvent{RequestID: rid, Time: t0, Actor: lethe.ActorSystem, Type: lethe.EventType(fmt.Sprintf("e%d", i))}
			var err error
			if i%2 == 0 {
				err = s.AppendAudit(ctx, e)
			} else {
				err = s.InTx(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, e) })
			}
			if err != nil {
				t.Errorf("AppendAudit: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := s.ListAudit(ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Errorf("%d events, want %d", len(got), n)
	}
	verifyChain(t, got)
}

// testAuditInTx checks the events a transaction appends at several points
// of its work: a read of the chain in the transaction sees them all, with
// their Seq; appends after the read continue the chain; after the commit
// every event is stored once, in order, and has its Seq; a transaction
// that rolls back stores none.
func testAuditInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	other := newID(t)
	ev := func(rid string, i int) *lethe.AuditEvent {
		return &lethe.AuditEvent{RequestID: rid, Time: t0.Add(time.Duration(i) * time.Second), Actor: lethe.ActorSystem, Type: lethe.EventType(fmt.Sprintf("event.%d", i))}
	}
	first := ev(r.ID, 0)
	if err := s.AppendAudit(ctx, first); err != nil {
		t.Fatal(err)
	}
	es := []*lethe.AuditEvent{ev(r.ID, 1), ev(r.ID, 2), ev(other, 3), ev(r.ID, 4), ev(r.ID, 5)}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.AppendAudit(ctx, es[0]); err != nil {
			return err
		}
		ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t0})
		if err != nil || !ok {
			return fmt.Errorf("update: %v, %v", ok, err)
		}
		for _, e := range es[1:3] {
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		got, err := tx.ListAudit(ctx, r.ID)
		if err != nil {
			return err
		}
		want := []lethe.AuditEvent{*first, *es[0], *es[1]}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListAudit in the appending transaction (-want +got):\n%s", diff)
		}
		for _, e := range es[3:] {
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rid := range []string{r.ID, other} {
		got, err := s.ListAudit(ctx, rid)
		if err != nil {
			t.Fatal(err)
		}
		var want []lethe.AuditEvent
		for _, e := range append([]*lethe.AuditEvent{first}, es...) {
			if e.RequestID == rid {
				if e.Seq == 0 {
					t.Errorf("event %s has no Seq after the commit", e.Type)
				}
				want = append(want, *e)
			}
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListAudit(%s) after the commit (-want +got):\n%s", rid, diff)
		}
		verifyChain(t, got)
	}

	errRollBack := fmt.Errorf("roll back")
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.AppendAudit(ctx, ev(r.ID, 6)); err != nil {
			return err
		}
		return errRollBack
	})
	if err != errRollBack {
		t.Fatalf("InTx = %v, want the rollback", err)
	}
	if got, err := s.ListAudit(ctx, r.ID); err != nil || len(got) != 5 {
		t.Errorf("after a rollback: %d events, %v; want the 5 committed", len(got), err)
	}
	// The next transaction continues the committed chain.
	if err := s.InTx(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, ev(r.ID, 7)) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(ctx, r.ID)
	if err != nil || len(got) != 6 {
		t.Fatalf("%d events, %v; want 6", len(got), err)
	}
	verifyChain(t, got)
}
