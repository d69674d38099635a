// Package storetest is the conformance suite every store.Store runs, so the
// sqlite and postgres stores behave the same down to the microsecond.
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Exercise runs the suite. open must return a new, migrated, empty store
// closed when the test ends.
func Exercise(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ready", testReady},
		{"RequestRoundTrip", testRequestRoundTrip},
		{"IdempotencyConflict", testIdempotencyConflict},
		{"Scope", testScope},
		{"ListPagination", testListPagination},
		{"FindOpenAndLatest", testFindOpenAndLatest},
		{"UpdateRequestState", testUpdateRequestState},
		{"UpdateRequestStateRace", testUpdateRequestStateRace},
		{"Identities", testIdentities},
		{"IdentitiesSealedAtRest", testIdentitiesSealedAtRest},
		{"CountRequestsByStatus", testCountRequestsByStatus},
		{"Tasks", testTasks},
		{"TaskTally", testTaskTally},
		{"TaskProgressInTx", testTaskProgressInTx},
		{"TaskPlanInTx", testTaskPlanInTx},
		{"TaskWaits", testTaskWaits},
		{"TaskWaitsEnd", testTaskWaitsEnd},
		{"Audit", testAudit},
		{"AuditConcurrentAppends", testAuditConcurrent},
		{"AuditInTx", testAuditInTx},
		{"Clients", testClients},
		{"Credentials", testCredentials},
		{"CredentialsSealedAtRest", testCredentialsSealedAtRest},
		{"Tokens", testTokens},
		{"RateLimit", testRateLimit},
		{"RateLimitConcurrent", testRateLimitConcurrent},
		{"RateLimitLease", testRateLimitLease},
		{"InTx", testInTx},
		{"AfterCommit", testAfterCommit},
		{"LockRequest", testLockRequest},
		{"Proofs", testProofs},
		{"StatusEvents", testStatusEvents},
		{"Suppressions", testSuppressions},
		{"Holds", testHolds},
		{"RetryAndSkip", testRetryAndSkip},
		{"Operators", testOperators},
		{"Extensions", testExtensions},
		{"Register", testRegister},
		{"ProfileKeys", testProfileKeys},
		{"CallbackFormat", testCallbackFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds and a zone on purpose: stores keep UTC microseconds.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func newRequest(t *testing.T, clientID string, ids ...lethe.Identity) *lethe.Request {
	t.Helper()
	return &lethe.Request{
		ID:         newID(t),
		ClientID:   clientID,
		ExternalID: "ext-" + newID(t)[:8],
		Regulation: lethe.GDPR,
		Status:     lethe.StatusReceived,
		Stage:      lethe.StageResolve,
		Identities: ids,
		SubjectKey: "subject-" + newID(t),
		ReceivedAt: t0,
		DueAt:      t0.Add(30 * 24 * time.Hour),
		UpdatedAt:  t0,
	}
}

func mustCreate(t *testing.T, s store.Queries, r *lethe.Request) *lethe.Request {
	t.Helper()
	if err := s.CreateRequest(context.Background(), r); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	return r
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testReady(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready on a migrated store: %v", err)
	}
	if d := s.Dialect(); d != "sqlite" && d != "postgres" {
		t.Errorf("Dialect() = %q", d)
	}
	switch s.Driver().(type) {
	case *sql.DB, *pgxpool.Pool:
	default:
		t.Errorf("Driver() is %T, want *sql.DB or *pgxpool.Pool", s.Driver())
	}
}

func testRateLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	const window, block = 10 * time.Minute, 10 * time.Minute
	take := func(key string, limit int, at time.Time, block time.Duration) (bool, time.Duration) {
		t.Helper()
		n, retry, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: key, Limit: limit, Window: window, Block: block, Now: at})
		if err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			t.Fatalf("a take of one token granted %d", n)
		}
		return n == 1, retry
	}
	for i := range 3 {
		if ok, _ := take("k", 3, t0.Add(time.Duration(i)*time.Second), block); !ok {
			t.Fatalf("take %d refused", i+1)
		}
	}
	// Other keys count apart.
	if ok, _ := take("other", 3, t0, block); !ok {
		t.Fatal("other key refused")
	}
	over := t0.Add(time.Minute)
	ok, retry := take("k", 3, over, block)
	if ok || retry != block {
		t.Fatalf("take over the limit = %v, %v; want refused for %v", ok, retry, block)
	}
	// Refusals during the block do not extend it.
	ok, retry = take("k", 3, over.Add(4*time.Minute), block)
	if ok || retry != 6*time.Minute {
		t.Fatalf("take during the block = %v, %v; want refused for 6m", ok, retry)
	}
	// The block outlasts the window it started in.
	ok, retry = take("k", 3, t0.Add(window+time.Second), block)
	if ok || retry != over.Add(block).Sub(t0.Add(window+time.Second)) {
		t.Fatalf("take after the window, still blocked = %v, %v", ok, retry)
	}
	// After the block a fresh window starts.
	after := over.Add(block)
	for i := range 3 {
		if ok, _ := take("k", 3, after.Add(time.Duration(i)*time.Millisecond), block); !ok {
			t.Fatalf("take %d after the block refused", i+1)
		}
	}
	if ok, _ := take("k", 3, after.Add(time.Second), block); ok {
		t.Fatal("fourth take in the new window allowed")
	}

	// A window that ends resets the count.
	for i := range 2 {
		if ok, _ := take("w", 2, t0.Add(time.Duration(i)*time.Second), block); !ok {
			t.Fatal("refused within the limit")
		}
	}
	if ok, _ := take("w", 2, t0.Add(window), block); !ok {
		t.Fatal("refused at the start of the next window")
	}

	// The window slides: two takes 9 minutes apart leave room for one more
	// only once the first is a window old, and then for no other until
	// the second is (a fixed window would start afresh at 10m).
	take("s", 2, t0, block)
	take("s", 2, t0.Add(9*time.Minute), block)
	if ok, _ := take("s", 2, t0.Add(window), block); !ok {
		t.Fatal("sliding: refused once the first take left the window")
	}
	if ok, retry := take("s", 2, t0.Add(window+time.Second), block); ok || retry != block {
		t.Fatalf("sliding: third take within 10 minutes = %v, %v; want refused for %v", ok, retry, block)
	}

	// Without a block period, refused until the oldest take leaves the
	// window.
	take("nb", 1, t0, 0)
	ok, retry = take("nb", 1, t0.Add(time.Minute), 0)
	if ok || retry != window-time.Minute {
		t.Fatalf("no-block refusal = %v, %v; want refused for 9m", ok, retry)
	}
	if ok, _ := take("nb", 1, t0.Add(window), 0); !ok {
		t.Fatal("no-block: refused in the next window")
	}
	if _, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "k", Window: window, Block: block, Now: t0}); err == nil {
		t.Error("limit 0 accepted")
	}
}

func testRateLimitConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const limit, takes = 50, 80
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range takes {
		wg.Go(func() {
			n, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "shared", Limit: limit, Window: 10 * time.Minute, Block: 10 * time.Minute, Now: t0.Add(time.Duration(i) * time.Millisecond)})
			if err != nil {
				t.Errorf("TakeRateLimit: %v", err)
			}
			if n == 1 {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != limit {
		t.Errorf("%d of %d concurrent takes allowed, want %d", got, takes, limit)
	}
}

// A lease takes several tokens at once, only up to half the limit; its
// tokens count until they are settled, then only the spent ones, dated at
// the last request they let through.
func testRateLimitLease(t *testing.T, s store.Store) {
	ctx := context.Background()
	const limit, window = 10, 10 * time.Minute
	take := func(at time.Time, want int, lease string, settle *store.RateLimitSettle) (int, time.Duration) {
		t.Helper()
		n, retry, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "l", Limit: limit, Window: window, Block: window,
			Now: at, Want: want, Lease: lease, LeaseUntil: at.Add(time.Second), Settle: settle})
		if err != nil {
			t.Fatal(err)
		}
		return n, retry
	}
	// Half of 10 is 5: this request and 4 more.
	if n, _ := take(t0, 8, "a", nil); n != 5 {
		t.Fatalf("first lease granted %d, want 5 (up to half the limit)", n)
	}
	// At half the limit, tokens are taken one by one.
	if n, _ := take(t0, 8, "b", nil); n != 1 {
		t.Fatalf("lease at half the limit granted %d, want 1", n)
	}
	// Lease a spent 1 of its 4 extra tokens, at t0+500ms: 3 come back, so
	// 6 - 3 = 3 count and the key is below half again.
	if n, _ := take(t0.Add(time.Minute), 3, "c", &store.RateLimitSettle{Lease: "a", Spent: 1, LastUse: t0.Add(500 * time.Millisecond)}); n != 2 {
		t.Fatalf("lease after a settle granted %d, want 2 (3 counted, 5 is half)", n)
	}
	// Settling again (as after an unknown commit outcome) changes nothing.
	take(t0.Add(time.Minute), 1, "", &store.RateLimitSettle{Lease: "a", Spent: 1, LastUse: t0.Add(500 * time.Millisecond)})
	// Counted now: t0 (1+1), t0+500ms (1), t0+1m (1, 1 leased at
	// t0+1m+1s), t0+1m (1): 6. Four more fit, then the 11th blocks.
	for i := range 4 {
		if n, _ := take(t0.Add(2*time.Minute), 1, "", nil); n != 1 {
			t.Fatalf("take %d of the last 4 refused", i+1)
		}
	}
	if n, retry := take(t0.Add(2*time.Minute), 1, "", nil); n != 0 || retry != window {
		t.Fatalf("11th token = %d, %v; want refused and blocked for %v", n, retry, window)
	}
	// The block ends at t0+12m, when everything above has left the
	// window: 10 fit again.
	after := t0.Add(12 * time.Minute)
	n, _ := take(after, 1, "", nil)
	if n != 1 {
		t.Fatal("refused after the block")
	}
	for i := range 9 {
		if n, _ := take(after, 1, "", nil); n != 1 {
			t.Fatalf("take %d of 9 after the window refused", i+1)
		}
	}
	if n, _ := take(after, 1, "", nil); n != 0 {
		t.Fatal("11th take in the new window allowed")
	}
	if _, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "l", Limit: limit, Window: window, Now: t0, Want: 2}); err == nil {
		t.Error("a lease without an id or end accepted")
	}
}

var errRollback = errors.New("roll back")
