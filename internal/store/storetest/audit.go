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
