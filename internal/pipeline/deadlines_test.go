package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// clock is an injected clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// createDue stores a request due at due (no job: the sweep reads requests
// only) and moves it to status.
func createDue(t *testing.T, st store.Store, now, due time.Time, status lethe.Status) string {
	t.Helper()
	ctx := context.Background()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR,
		Status: lethe.StatusReceived, Stage: lethe.StageResolve,
		Identities: []lethe.Identity{email}, SubjectKey: randomHex(16),
		ReceivedAt: now, DueAt: due, UpdatedAt: now,
	}
	if err := st.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if status != lethe.StatusReceived {
		ok, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageResolve}, To: status, ToStage: lethe.StageResolve, At: now})
		if err != nil || !ok {
			t.Fatalf("move to %s: %v, %v", status, ok, err)
		}
	}
	return r.ID
}

func TestDeadlineSweep(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		clk := &clock{now: time.Date(2030, 1, 10, 12, 0, 0, 0, time.UTC)}
		cfg := testConfig()
		cfg.Now = clk.Now
		cfg.Deadlines = &Deadlines{} // defaults: warn 7 days before
		p := build(t, st, cfg)
		now := clk.Now()
		const day = 24 * time.Hour

		soon := createDue(t, st, now, now.Add(3*day), lethe.StatusReceived)
		late := createDue(t, st, now, now.Add(-day), lethe.StatusRunning)
		far := createDue(t, st, now, now.Add(20*day), lethe.StatusReceived)
		closed := createDue(t, st, now, now.Add(-2*day), lethe.StatusCanceled)

		counts := func(wantSoon, wantOver int64) {
			t.Helper()
			s, o, err := p.CountDeadlines(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s != wantSoon || o != wantOver {
				t.Errorf("CountDeadlines = %d due soon, %d overdue; want %d, %d", s, o, wantSoon, wantOver)
			}
		}
		sweep := func(wantSoon, wantOver int) {
			t.Helper()
			s, o, err := p.SweepDeadlines(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s != wantSoon || o != wantOver {
				t.Errorf("SweepDeadlines flagged %d due soon, %d overdue; want %d, %d", s, o, wantSoon, wantOver)
			}
		}
		counts(1, 1)
		sweep(1, 1)
		sweep(0, 0) // each warning once
		for id, want := range map[string]map[string]int{
			soon:   {"request.due_soon": 1},
			late:   {"request.overdue": 1}, // overdue when first seen: no due_soon event
			far:    {},
			closed: {},
		} {
			got := auditTypes(t, st, id)
			for _, typ := range []string{"request.due_soon", "request.overdue"} {
				if got[typ] != want[typ] {
					t.Errorf("request due %s: %d %s events, want %d", id, got[typ], typ, want[typ])
				}
			}
		}

		// Four days on, the first request is overdue too.
		clk.add(4 * day)
		counts(0, 2)
		sweep(0, 1)
		if n := auditTypes(t, st, soon)["request.overdue"]; n != 1 {
			t.Errorf("%d request.overdue events on the request that became overdue, want 1", n)
		}

		// The list API's filters: open and due before now.
		got, _, err := st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 10, Open: true, DueBefore: clk.Now()})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, r := range got {
			ids[r.ID] = true
		}
		if len(ids) != 2 || !ids[soon] || !ids[late] {
			t.Errorf("overdue list = %v, want the two open overdue requests", ids)
		}
		got, _, err = st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 10, DueBefore: clk.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Errorf("due_before list has %d requests, want 3 (the closed one included)", len(got))
		}
	})
}

// TestInsertOnlyPipeline checks the API role: an insert-only pipeline
// enqueues a request's first job and runs nothing, and a worker pipeline
// on the same database then carries the request out.
func TestInsertOnlyPipeline(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		cfg := testConfig()
		cfg.InsertOnly = true
		cfg.Deadlines = &Deadlines{}
		api := start(t, st, cfg) // Start and Stop are no-ops
		id := submit(t, st, api)
		time.Sleep(300 * time.Millisecond) // several poll intervals
		r, err := st.GetRequest(context.Background(), id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != lethe.StatusReceived {
			t.Fatalf("an insert-only pipeline worked the request: status %s", r.Status)
		}
		if n, err := api.QueueDepth(context.Background()); err != nil || n != 1 {
			t.Fatalf("queue depth %d, %v; want the one resolve job", n, err)
		}
		start(t, st, testConfig())
		waitDone(t, st, id, lethe.StatusCompleted)
	})
}
