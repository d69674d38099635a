package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestRegisterKeptTwentyFourMonths follows one request through the
// retention periods on an injected clock: its details go after 7 days,
// its register entry stays for 24 months from its closing and then goes,
// and its receipt outlives both (retention.legal).
func TestRegisterKeptTwentyFourMonths(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		clock := &testClock{t: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
		cfg := testConfig()
		cfg.Now = clock.Now
		const register = 730 * 24 * time.Hour
		signer, _, err := audit.LoadSigner(ctx, st, testdb.Keyring(t), "", clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Signer = signer
		cfg.Retention = &Retention{RequestDetails: 7 * 24 * time.Hour, Legal: 3 * 365 * 24 * time.Hour, Register: register}
		target := newMemTarget()
		target.put(email, 2)
		p := start(t, st, cfg, Target{"shop", target})
		id := submit(t, st, p, email)
		done := waitDone(t, st, id, lethe.StatusCompleted)
		closed := done.CompletedAt
		if !closed.Equal(clock.Now()) {
			t.Fatalf("completed at %v, not on the injected clock (%v)", closed, clock.Now())
		}
		all := store.Scope{All: true}
		entry := func() (store.RegisterEntry, bool) {
			t.Helper()
			es, err := st.RegisterPage(ctx, store.RegisterFilter{Scope: all, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.RequestID == id {
					return e, true
				}
			}
			return store.RegisterEntry{}, false
		}
		receipt := func() bool {
			t.Helper()
			_, err := st.GetReceipt(ctx, id, all)
			return err == nil
		}
		purgeAt := func(at time.Time) {
			t.Helper()
			clock.Set(at)
			if err := p.purge(ctx); err != nil {
				t.Fatal(err)
			}
		}

		if !receipt() {
			t.Fatal("no receipt issued")
		}
		// Day 6: everything is there, from the live tables.
		purgeAt(closed.Add(6 * 24 * time.Hour))
		if e, ok := entry(); !ok || e.Archived {
			t.Fatalf("day 6: entry %+v, %v; want the live request", e, ok)
		}
		live, _ := entry()

		// Day 8: details purged, the entry is the register's and says the
		// same.
		purgeAt(closed.Add(8 * 24 * time.Hour))
		if _, err := st.GetRequest(ctx, id, all); err == nil {
			t.Fatal("details kept past 7 days")
		}
		e, ok := entry()
		if !ok || !e.Archived {
			t.Fatalf("day 8: entry %+v, %v; want it archived", e, ok)
		}
		live.Archived = true
		if e.Status != lethe.StatusCompleted || e.Outcome != lethe.OutcomeErased || !e.ClosedAt.Equal(closed) ||
			len(e.Targets) != 1 || e.Targets[0] != (store.RegisterTarget{Target: "shop", State: lethe.TaskDone}) ||
			!e.ReceivedAt.Equal(live.ReceivedAt) || !e.DueAt.Equal(live.DueAt) {
			t.Errorf("archived entry %+v, live was %+v", e, live)
		}
		if !receipt() {
			t.Error("day 8: receipt gone")
		}

		// The last moment of the 24 months, then just past it.
		purgeAt(closed.Add(register))
		if _, ok := entry(); !ok {
			t.Fatal("register entry gone at exactly 24 months")
		}
		if !receipt() {
			t.Error("24 months: receipt gone")
		}
		purgeAt(closed.Add(register + time.Second))
		if _, ok := entry(); ok {
			t.Fatal("register entry kept past 24 months")
		}
		if !receipt() {
			t.Error("receipt gone with the register entry; retention.legal keeps it")
		}
		if n := auditTypes(t, st, id)[string(lethe.EventRequestPurged)]; n != 1 {
			t.Errorf("request.purged events = %d", n)
		}
	})
}
