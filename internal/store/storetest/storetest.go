// Package storetest is the conformance suite every store.Store runs, so the
// sqlite and postgres stores behave the same down to the microsecond.
package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Keyring returns a keyring with a fixed test key.
func Keyring(tb testing.TB) *seal.Keyring {
	tb.Helper()
	k, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

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
		{"TaskWaits", testTaskWaits},
		{"Audit", testAudit},
		{"AuditConcurrentAppends", testAuditConcurrent},
		{"Clients", testClients},
		{"Credentials", testCredentials},
		{"CredentialsSealedAtRest", testCredentialsSealedAtRest},
		{"Tokens", testTokens},
		{"RateLimit", testRateLimit},
		{"RateLimitConcurrent", testRateLimitConcurrent},
		{"InTx", testInTx},
		{"LockRequest", testLockRequest},
		{"Proofs", testProofs},
		{"Callbacks", testCallbacks}, {"Suppressions", testSuppressions}, // callbacks.go
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

// requestOpts compares requests as read back: identities are never filled
// by reads, and nil and empty task lists mean the same.
var requestOpts = cmp.Options{
	cmpopts.IgnoreFields(lethe.Request{}, "Identities"),
	cmpopts.EquateEmpty(),
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

func testRequestRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: "ada@example.com"},
		{Type: lethe.IdentityPhone, Value: "+4915112345678"},
	}
	r := newRequest(t, "c1", ids...)
	r.IdempotencyKey = "idem-1"
	r.CallbackURL = "https://example.com/cb"
	mustCreate(t, s, r)

	if !r.ReceivedAt.Equal(micro(t0)) || r.ReceivedAt.Location() != time.UTC {
		t.Errorf("CreateRequest did not normalise ReceivedAt: %v", r.ReceivedAt)
	}
	got, err := s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.ReceivedAt, want.DueAt, want.UpdatedAt = micro(t0), micro(t0.Add(30*24*time.Hour)), micro(t0)
	if diff := cmp.Diff(&want, got, requestOpts); diff != "" {
		t.Errorf("GetRequest (-want +got):\n%s", diff)
	}
	if got.ReceivedAt.Location() != time.UTC || got.ReceivedAt.Nanosecond() != 123456000 {
		t.Errorf("ReceivedAt = %v, want UTC truncated to microseconds", got.ReceivedAt)
	}
	if !got.StartedAt.IsZero() || !got.CompletedAt.IsZero() {
		t.Errorf("StartedAt/CompletedAt = %v/%v, want zero", got.StartedAt, got.CompletedAt)
	}
	gotIDs, err := s.RequestIdentities(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids, gotIDs); diff != "" {
		t.Errorf("RequestIdentities (-want +got):\n%s", diff)
	}
	_, err = s.GetRequest(ctx, newID(t), store.Scope{All: true})
	wantErr(t, "GetRequest(unknown)", err, store.ErrNotFound)

	if err := s.CreateRequest(ctx, &lethe.Request{ID: newID(t)}); err == nil {
		t.Error("CreateRequest without status, stage and times succeeded")
	}
}

func testIdempotencyConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1 := newRequest(t, "c1")
	r1.IdempotencyKey = "k"
	mustCreate(t, s, r1)

	dup := newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityUserID, Value: "u1"})
	dup.IdempotencyKey = "k"
	wantErr(t, "CreateRequest(same client and key)", s.CreateRequest(ctx, dup), store.ErrConflict)
	if _, err := s.GetRequest(ctx, dup.ID, store.Scope{All: true}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("conflicting request was stored: %v", err)
	}
	if ids, err := s.RequestIdentities(ctx, dup.ID); err != nil || len(ids) != 0 {
		t.Errorf("identities of the conflicting request were stored: %d, %v", len(ids), err)
	}

	other := newRequest(t, "c2")
	other.IdempotencyKey = "k"
	mustCreate(t, s, other)
	admin := newRequest(t, "")
	admin.IdempotencyKey = "k"
	mustCreate(t, s, admin)
	// Requests without a key never conflict with each other.
	mustCreate(t, s, newRequest(t, "c1"))
	mustCreate(t, s, newRequest(t, "c1"))

	sameID := newRequest(t, "c3")
	sameID.ID = r1.ID
	wantErr(t, "CreateRequest(same id)", s.CreateRequest(ctx, sameID), store.ErrConflict)

	for _, tc := range []struct {
		client, key, want string
	}{{"c1", "k", r1.ID}, {"c2", "k", other.ID}, {"", "k", admin.ID}} {
		got, err := s.FindRequestByIdempotencyKey(ctx, tc.client, tc.key)
		if err != nil || got.ID != tc.want {
			t.Errorf("FindRequestByIdempotencyKey(%q, %q) = %v, %v; want %s", tc.client, tc.key, got, err, tc.want)
		}
	}
	_, err := s.FindRequestByIdempotencyKey(ctx, "c3", "k")
	wantErr(t, "FindRequestByIdempotencyKey(other client)", err, store.ErrNotFound)
	_, err = s.FindRequestByIdempotencyKey(ctx, "c1", "")
	wantErr(t, "FindRequestByIdempotencyKey(empty key)", err, store.ErrNotFound)

	// A conflict inside a transaction leaves it usable: intake answers a
	// replay by reading the first request in the same transaction.
	err = s.InTx(ctx, func(tx store.Tx) error {
		again := newRequest(t, "c1")
		again.IdempotencyKey = "k"
		if err := tx.CreateRequest(ctx, again); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("CreateRequest in tx: got %v, want ErrConflict", err)
		}
		got, err := tx.FindRequestByIdempotencyKey(ctx, "c1", "k")
		if err != nil {
			return fmt.Errorf("read after conflict: %w", err)
		}
		if got.ID != r1.ID {
			return fmt.Errorf("read after conflict: got %s", got.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testScope(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mustCreate(t, s, newRequest(t, "a"))
	b := mustCreate(t, s, newRequest(t, "b"))
	adm := mustCreate(t, s, newRequest(t, ""))

	for _, tc := range []struct {
		id    string
		scope store.Scope
		ok    bool
	}{
		{a.ID, store.Scope{ClientID: "a"}, true},
		{a.ID, store.Scope{ClientID: "b"}, false},
		{b.ID, store.Scope{ClientID: "a"}, false},
		{a.ID, store.Scope{All: true}, true},
		{adm.ID, store.Scope{All: true}, true},
		{adm.ID, store.Scope{ClientID: "a"}, false},
		{a.ID, store.Scope{}, false},
		{adm.ID, store.Scope{}, false},
	} {
		_, err := s.GetRequest(ctx, tc.id, tc.scope)
		if tc.ok && err != nil {
			t.Errorf("GetRequest(%+v): %v", tc.scope, err)
		}
		if !tc.ok && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRequest(%+v) = %v, want ErrNotFound", tc.scope, err)
		}
	}
	list := func(sc store.Scope) []string {
		rs, _, err := s.ListRequests(ctx, store.ListFilter{Scope: sc, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if diff := cmp.Diff([]string{a.ID}, list(store.Scope{ClientID: "a"})); diff != "" {
		t.Errorf("ListRequests(client a) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{adm.ID, b.ID, a.ID}, list(store.Scope{All: true})); diff != "" {
		t.Errorf("ListRequests(all) (-want +got):\n%s", diff)
	}
	if got := list(store.Scope{}); len(got) != 0 {
		t.Errorf("ListRequests(zero scope) = %v, want nothing", got)
	}
}

func testListPagination(t *testing.T, s store.Store) {
	ctx := context.Background()
	var mine, completed []string
	for i := range 25 {
		r := newRequest(t, "c1")
		if i%3 == 0 {
			r.Status = lethe.StatusCompleted
			completed = append(completed, r.ID)
		}
		mustCreate(t, s, r)
		mine = append(mine, r.ID)
		mustCreate(t, s, newRequest(t, "c2"))
	}
	slices.Reverse(mine)
	slices.Reverse(completed)

	page := func(f store.ListFilter) []string {
		t.Helper()
		var all []string
		pages := 0
		for {
			rs, next, err := s.ListRequests(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(rs) > f.Limit {
				t.Fatalf("page of %d for limit %d", len(rs), f.Limit)
			}
			for _, r := range rs {
				if len(r.Tasks) != 0 {
					t.Errorf("ListRequests filled tasks")
				}
				all = append(all, r.ID)
			}
			if next == "" {
				break
			}
			if pages > 100 {
				t.Fatal("pagination does not end")
			}
			f.Cursor = next
		}
		return all
	}
	got := page(store.ListFilter{Scope: store.Scope{ClientID: "c1"}, Limit: 7})
	if diff := cmp.Diff(mine, got); diff != "" {
		t.Errorf("pages of 7 (-want +got):\n%s", diff)
	}
	// An exact multiple of the page size must not end with an empty page.
	rs, next, err := s.ListRequests(ctx, store.ListFilter{Scope: store.Scope{ClientID: "c1"}, Limit: 25})
	if err != nil || len(rs) != 25 || next != "" {
		t.Errorf("one full page: %d rows, next %q, err %v", len(rs), next, err)
	}
	got = page(store.ListFilter{Scope: store.Scope{ClientID: "c1"}, Status: lethe.StatusCompleted, Limit: 2})
	if diff := cmp.Diff(completed, got); diff != "" {
		t.Errorf("completed, pages of 2 (-want +got):\n%s", diff)
	}
	if got := page(store.ListFilter{Scope: store.Scope{All: true}, Limit: 10}); len(got) != 50 {
		t.Errorf("all requests: %d, want 50", len(got))
	}
	for _, bad := range []string{"!!!", "bm90LWEtY3Vyc29y", mine[0]} {
		_, _, err := s.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 10, Cursor: bad})
		if lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("ListRequests(cursor %q) = %v, want %s", bad, err, lethe.EINVALID)
		}
	}
}

func testFindOpenAndLatest(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := newRequest(t, "c1")
	old.SubjectKey = "s1"
	old.Status = lethe.StatusCompleted
	mustCreate(t, s, old)
	_, err := s.FindOpenRequest(ctx, "c1", "s1")
	wantErr(t, "FindOpenRequest(only closed)", err, store.ErrNotFound)

	open1 := newRequest(t, "c1")
	open1.SubjectKey = "s1"
	open1.Status = lethe.StatusRunning
	mustCreate(t, s, open1)
	// A client has at most one open request per subject: a second one is a
	// conflict (intake then answers with the first).
	open2 := newRequest(t, "c1")
	open2.SubjectKey = "s1"
	err = s.CreateRequest(ctx, open2)
	wantErr(t, "CreateRequest(second open for subject)", err, store.ErrConflict)
	closed := newRequest(t, "c1")
	closed.SubjectKey = "s1"
	closed.Status = lethe.StatusCanceled
	mustCreate(t, s, closed)
	other := newRequest(t, "c2")
	other.SubjectKey = "s1"
	mustCreate(t, s, other)

	got, err := s.FindOpenRequest(ctx, "c1", "s1")
	if err != nil || got.ID != open1.ID {
		t.Errorf("FindOpenRequest = %v, %v; want the open %s", got, err, open1.ID)
	}
	_, err = s.FindOpenRequest(ctx, "c3", "s1")
	wantErr(t, "FindOpenRequest(other client)", err, store.ErrNotFound)

	s2 := newRequest(t, "c1")
	s2.SubjectKey = "s2"
	mustCreate(t, s, s2)
	latest, err := s.LatestRequestsBySubject(ctx, "c1", []string{"s1", "s2", "s3", "s1"})
	if err != nil {
		t.Fatal(err)
	}
	gotIDs := map[string]string{}
	for k, r := range latest {
		gotIDs[k] = r.ID
	}
	if diff := cmp.Diff(map[string]string{"s1": closed.ID, "s2": s2.ID}, gotIDs); diff != "" {
		t.Errorf("LatestRequestsBySubject (-want +got):\n%s", diff)
	}
	latest, err = s.LatestRequestsBySubject(ctx, "c1", nil)
	if err != nil || len(latest) != 0 {
		t.Errorf("LatestRequestsBySubject(no keys) = %v, %v", latest, err)
	}
	// More keys than one batch.
	many := make([]string, 1200)
	for i := range many {
		many[i] = fmt.Sprintf("k%d", i)
	}
	many[1100] = "s2"
	latest, err = s.LatestRequestsBySubject(ctx, "c1", many)
	if err != nil || len(latest) != 1 || latest["s2"].ID != s2.ID {
		t.Errorf("LatestRequestsBySubject(1200 keys) = %v, %v", latest, err)
	}
}

func testUpdateRequestState(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	t1 := t0.Add(time.Minute)
	t2 := t0.Add(2 * time.Minute)

	ok, err := s.UpdateRequestState(ctx, r.ID, []lethe.Status{lethe.StatusRunning}, nil, lethe.StatusCompleted, lethe.StageDone, t1)
	if err != nil || ok {
		t.Fatalf("update from a state it is not in = %v, %v; want false", ok, err)
	}
	ok, err = s.UpdateRequestState(ctx, r.ID, []lethe.Status{lethe.StatusReceived}, []lethe.Stage{lethe.StageErase}, lethe.StatusRunning, lethe.StageErase, t1)
	if err != nil || ok {
		t.Fatalf("update from a stage it is not in = %v, %v; want false", ok, err)
	}
	ok, err = s.UpdateRequestState(ctx, r.ID, []lethe.Status{lethe.StatusReceived}, []lethe.Stage{lethe.StageResolve}, lethe.StatusRunning, lethe.StageErase, t1)
	if err != nil || !ok {
		t.Fatalf("update = %v, %v; want true", ok, err)
	}
	// A replay must not move StartedAt.
	ok, err = s.UpdateRequestState(ctx, r.ID, nil, nil, lethe.StatusRunning, lethe.StageVerify, t2)
	if err != nil || !ok {
		t.Fatalf("update from any = %v, %v; want true", ok, err)
	}
	got, err := s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != lethe.StatusRunning || got.Stage != lethe.StageVerify || !got.StartedAt.Equal(micro(t1)) ||
		!got.UpdatedAt.Equal(micro(t2)) || !got.CompletedAt.IsZero() {
		t.Errorf("after running: %+v", got)
	}
	ok, err = s.UpdateRequestState(ctx, r.ID, []lethe.Status{lethe.StatusReceived, lethe.StatusRunning}, nil, lethe.StatusFailed, lethe.StageDone, t2)
	if err != nil || !ok {
		t.Fatalf("finish = %v, %v", ok, err)
	}
	got, _ = s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if got.Status != lethe.StatusFailed || !got.CompletedAt.Equal(micro(t2)) || !got.StartedAt.Equal(micro(t1)) {
		t.Errorf("after failing: %+v", got)
	}
	ok, err = s.UpdateRequestState(ctx, newID(t), nil, nil, lethe.StatusCanceled, lethe.StageDone, t2)
	if err != nil || ok {
		t.Errorf("update of an unknown request = %v, %v; want false", ok, err)
	}
	if _, err := s.UpdateRequestState(ctx, r.ID, nil, nil, "bogus", lethe.StageDone, t2); err == nil {
		t.Error("update to an invalid status succeeded")
	}
}

func testUpdateRequestStateRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	const n = 20
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Half through the pool, half inside transactions, as the
			// pipeline and the cancel endpoint do.
			var ok bool
			var err error
			if i%2 == 0 {
				ok, err = s.UpdateRequestState(ctx, r.ID, []lethe.Status{lethe.StatusReceived}, []lethe.Stage{lethe.StageResolve}, lethe.StatusRunning, lethe.StageErase, t0)
			} else {
				err = s.InTx(ctx, func(tx store.Tx) error {
					ok, err = tx.UpdateRequestState(ctx, r.ID, []lethe.Status{lethe.StatusReceived}, []lethe.Stage{lethe.StageResolve}, lethe.StatusRunning, lethe.StageErase, t0)
					return err
				})
			}
			if err != nil {
				t.Errorf("UpdateRequestState: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("%d of %d concurrent compare-and-sets won, want exactly 1", got, n)
	}
}

func testIdentities(t *testing.T, s store.Store) {
	ctx := context.Background()
	given := []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: "ada@example.com"},
		{Type: lethe.IdentityEmail, Value: "ada@example.com"}, // duplicate: stored once
		{Type: lethe.IdentityUserID, Value: "42"},
	}
	r := mustCreate(t, s, newRequest(t, "c1", given...))
	linked := []lethe.Identity{
		{Type: lethe.IdentityUserID, Value: "42"}, // already given
		{Type: lethe.IdentityPhone, Value: "+4915112345678"},
		{Type: "x-crm", Value: "42"}, // same value, other type: distinct
	}
	if err := s.AddLinkedIdentities(ctx, r.ID, linked); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLinkedIdentities(ctx, r.ID, linked); err != nil {
		t.Fatalf("AddLinkedIdentities replayed: %v", err)
	}
	got, err := s.RequestIdentities(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []lethe.Identity{given[0], given[2], linked[1], linked[2]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RequestIdentities (-want +got):\n%s", diff)
	}
	wantErr(t, "AddLinkedIdentities(unknown request)", s.AddLinkedIdentities(ctx, newID(t), linked), store.ErrNotFound)

	if err := s.DropIdentityValues(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DropIdentityValues(ctx, r.ID); err != nil {
		t.Fatalf("DropIdentityValues twice: %v", err)
	}
	got, err = s.RequestIdentities(ctx, r.ID)
	if err != nil || len(got) != 0 {
		t.Errorf("RequestIdentities after drop = %d identities, %v", len(got), err)
	}
	rows := rawRows(t, s, "SELECT value_hash FROM request_identities WHERE request_id = '"+r.ID+"'")
	if len(rows) != 4 {
		t.Errorf("after drop %d identity hashes remain, want 4", len(rows))
	}
}

func testIdentitiesSealedAtRest(t *testing.T, s store.Store) {
	ctx := context.Background()
	secret := "sealed-at-rest-" + newID(t) + "@example.com"
	r := mustCreate(t, s, newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityEmail, Value: secret}))
	if err := s.AddLinkedIdentities(ctx, r.ID, []lethe.Identity{{Type: lethe.IdentityUserID, Value: "linked-" + secret}}); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, "request_identities", secret)
	assertAbsent(t, s, "requests", secret)
	if got, err := s.RequestIdentities(ctx, r.ID); err != nil || len(got) != 2 || got[0].Value != secret {
		t.Errorf("RequestIdentities = %d, %v", len(got), err)
	}
}

func testCountRequestsByStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.CountRequestsByStatus(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	for _, st := range []lethe.Status{lethe.StatusReceived, lethe.StatusReceived, lethe.StatusRunning, lethe.StatusFailed} {
		r := newRequest(t, "c1")
		r.Status = st
		mustCreate(t, s, r)
	}
	got, err = s.CountRequestsByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[lethe.Status]int64{lethe.StatusReceived: 2, lethe.StatusRunning: 1, lethe.StatusFailed: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CountRequestsByStatus (-want +got):\n%s", diff)
	}
}

func testTasks(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	t1, t2, t3 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	if err := s.CreateTasks(ctx, r.ID, []string{"db", "cache", "api"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.StartTaskAttempt(ctx, r.ID, "db", t1); err != nil || !ok {
		t.Fatalf("StartTaskAttempt = %v, %v", ok, err)
	}
	// A replayed create leaves existing tasks as they are.
	if err := s.CreateTasks(ctx, r.ID, []string{"db", "cache", "api", "zeta"}, t2); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	pending := func(target string, at time.Time) lethe.Task {
		return lethe.Task{RequestID: r.ID, Target: target, State: lethe.TaskPending, UpdatedAt: micro(at)}
	}
	running := lethe.Task{RequestID: r.ID, Target: "db", State: lethe.TaskRunning, Attempts: 1, StartedAt: micro(t1), UpdatedAt: micro(t1)}
	want := []lethe.Task{pending("api", t0), pending("cache", t0), running, pending("zeta", t2)}
	if diff := cmp.Diff(want, tasks, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ListTasks (-want +got):\n%s", diff)
	}
	if n, err := s.CountOpenTasks(ctx, r.ID); err != nil || n != 4 {
		t.Errorf("CountOpenTasks = %d, %v; want 4", n, err)
	}

	if err := s.RecordTaskError(ctx, r.ID, "db", "connection refused", t2); err != nil {
		t.Fatal(err)
	}
	task, ok, err := s.StartTaskAttempt(ctx, r.ID, "db", t2)
	if err != nil || !ok || task.Attempts != 2 || !task.StartedAt.Equal(micro(t1)) || task.LastError != "connection refused" {
		t.Fatalf("second StartTaskAttempt = %+v, %v, %v", task, ok, err)
	}
	report := lethe.Report{Items: []lethe.ReportItem{
		{Object: "users", Action: lethe.ActionDelete, Rows: 1},
		{Object: "invoices", Action: lethe.ActionRetain, Rows: 3, Reason: "tax law", Until: time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)},
	}}
	if ok, err := s.FinishTask(ctx, r.ID, "db", lethe.TaskDone, report, "", t3); err != nil || !ok {
		t.Fatalf("FinishTask = %v, %v", ok, err)
	}
	if ok, err := s.FinishTask(ctx, r.ID, "db", lethe.TaskFailed, lethe.Report{}, "late", t3); err != nil || ok {
		t.Errorf("FinishTask on an ended task = %v, %v; want false", ok, err)
	}
	if _, err := s.FinishTask(ctx, r.ID, "cache", lethe.TaskRunning, lethe.Report{}, "", t3); err == nil {
		t.Error("FinishTask to a non-terminal state succeeded")
	}
	if err := s.RecordTaskError(ctx, r.ID, "db", "late error", t3); err != nil {
		t.Errorf("RecordTaskError on an ended task: %v", err)
	}
	task, ok, err = s.StartTaskAttempt(ctx, r.ID, "db", t3)
	wantDone := lethe.Task{RequestID: r.ID, Target: "db", State: lethe.TaskDone, Attempts: 2, Report: report,
		StartedAt: micro(t1), FinishedAt: micro(t3), UpdatedAt: micro(t3)}
	if err != nil || ok {
		t.Errorf("StartTaskAttempt on an ended task = %v, %v; want false", ok, err)
	}
	if diff := cmp.Diff(wantDone, task, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ended task (-want +got):\n%s", diff)
	}
	if ok, err := s.FinishTask(ctx, r.ID, "cache", lethe.TaskSkipped, lethe.Report{}, "", t3); err != nil || !ok {
		t.Errorf("FinishTask(pending -> skipped) = %v, %v", ok, err)
	}
	if n, err := s.CountOpenTasks(ctx, r.ID); err != nil || n != 2 {
		t.Errorf("CountOpenTasks = %d, %v; want 2", n, err)
	}

	if ok, err := s.FailVerifiedTask(ctx, r.ID, "cache", "left", t3); err != nil || ok {
		t.Errorf("FailVerifiedTask on a skipped task = %v, %v; want false", ok, err)
	}
	if ok, err := s.FailVerifiedTask(ctx, r.ID, "db", "2 rows left in users", t3.Add(time.Second)); err != nil || !ok {
		t.Errorf("FailVerifiedTask = %v, %v", ok, err)
	}
	got, err := s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tasks) != 4 || got.Tasks[2].State != lethe.TaskFailed || got.Tasks[2].LastError != "2 rows left in users" {
		t.Errorf("GetRequest tasks = %+v", got.Tasks)
	}

	_, _, err = s.StartTaskAttempt(ctx, r.ID, "nope", t3)
	wantErr(t, "StartTaskAttempt(unknown)", err, store.ErrNotFound)
	wantErr(t, "RecordTaskError(unknown)", s.RecordTaskError(ctx, r.ID, "nope", "x", t3), store.ErrNotFound)
	if ok, err := s.FinishTask(ctx, r.ID, "nope", lethe.TaskDone, lethe.Report{}, "", t3); err != nil || ok {
		t.Errorf("FinishTask(unknown) = %v, %v; want false", ok, err)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	r1, r2 := newID(t), newID(t)
	var appended []lethe.AuditEvent
	for i, rid := range []string{r1, r2, r1, "", r1, r2} {
		e := &lethe.AuditEvent{
			RequestID: rid,
			Time:      t0.Add(time.Duration(i) * time.Second),
			Actor:     lethe.ActorSystem,
			Type:      fmt.Sprintf("event.%d", i),
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
			e := &lethe.AuditEvent{RequestID: rid, Time: t0, Actor: lethe.ActorSystem, Type: fmt.Sprintf("e%d", i)}
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

func newClient(t *testing.T, name string) *lethe.Client {
	return &lethe.Client{ID: newID(t), Name: name, CreatedAt: t0}
}

func testClients(t *testing.T, s store.Store) {
	ctx := context.Background()
	b := newClient(t, "bravo")
	a := newClient(t, "alpha")
	for _, c := range []*lethe.Client{b, a} {
		if err := s.CreateClient(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !a.CreatedAt.Equal(micro(t0)) {
		t.Errorf("CreateClient did not normalise CreatedAt")
	}
	wantErr(t, "CreateClient(same name)", s.CreateClient(ctx, newClient(t, "alpha"), nil), store.ErrConflict)
	dupID := newClient(t, "charlie")
	dupID.ID = a.ID
	wantErr(t, "CreateClient(same id)", s.CreateClient(ctx, dupID, nil), store.ErrConflict)

	got, err := s.GetClient(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("GetClient (-want +got):\n%s", diff)
	}
	got, err = s.GetClientByName(ctx, "bravo")
	if err != nil || got.ID != b.ID {
		t.Errorf("GetClientByName = %v, %v", got, err)
	}
	_, err = s.GetClient(ctx, newID(t))
	wantErr(t, "GetClient(unknown)", err, store.ErrNotFound)
	_, err = s.GetClientByName(ctx, "zulu")
	wantErr(t, "GetClientByName(unknown)", err, store.ErrNotFound)

	if err := s.SetClientDisabled(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetClientDisabled(unknown)", s.SetClientDisabled(ctx, newID(t), true), store.ErrNotFound)
	list, err := s.ListClients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Disabled = true
	if diff := cmp.Diff([]*lethe.Client{a, b}, list); diff != "" {
		t.Errorf("ListClients (-want +got):\n%s", diff)
	}
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newClient(t, "partner")
	creds := []store.Credential{
		{Kind: store.CredAPIKey, Hash: "apikey-hash-1", CreatedAt: t0},
		{Kind: store.CredHMACSecret, Secret: "foobar", CreatedAt: t0},
	}
	if err := s.CreateClient(ctx, c, creds); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	got, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-1", now)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Credential{ID: got.ID, ClientID: c.ID, Kind: store.CredAPIKey, Hash: "apikey-hash-1", CreatedAt: micro(t0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FindCredential (-want +got):\n%s", diff)
	}
	_, err = s.FindCredential(ctx, store.CredOAuthSecret, "apikey-hash-1", now)
	wantErr(t, "FindCredential(other kind)", err, store.ErrNotFound)

	secrets, err := s.ClientCredentials(ctx, c.ID, store.CredHMACSecret, now)
	if err != nil || len(secrets) != 1 || secrets[0].Secret != "foobar" || secrets[0].Hash != "" {
		t.Fatalf("ClientCredentials(hmac) = %+v, %v", secrets, err)
	}

	// Rotation: the old key expires after an overlap, the new one does not.
	overlapEnd := now.Add(time.Hour)
	if err := s.ExpireCredentials(ctx, c.ID, store.CredAPIKey, overlapEnd); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredAPIKey, Hash: "apikey-hash-2", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-1", overlapEnd.Add(-time.Microsecond)); err != nil {
		t.Errorf("old key during the overlap: %v", err)
	}
	_, err = s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-1", overlapEnd)
	wantErr(t, "FindCredential(old key after the overlap)", err, store.ErrNotFound)
	if _, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-2", overlapEnd.Add(24*time.Hour)); err != nil {
		t.Errorf("new key: %v", err)
	}
	keys, err := s.ClientCredentials(ctx, c.ID, store.CredAPIKey, now)
	if err != nil || len(keys) != 2 || keys[0].Hash != "apikey-hash-1" || !keys[0].ExpiresAt.Equal(micro(overlapEnd)) || keys[1].Hash != "apikey-hash-2" {
		t.Errorf("ClientCredentials during the overlap = %+v, %v", keys, err)
	}
	keys, err = s.ClientCredentials(ctx, c.ID, store.CredAPIKey, overlapEnd)
	if err != nil || len(keys) != 1 || keys[0].Hash != "apikey-hash-2" {
		t.Errorf("ClientCredentials after the overlap = %+v, %v", keys, err)
	}

	// A credential hash belongs to one client only; the failed create
	// leaves no client behind.
	other := newClient(t, "other")
	err = s.CreateClient(ctx, other, []store.Credential{{Kind: store.CredAPIKey, Hash: "apikey-hash-2", CreatedAt: t0}})
	wantErr(t, "CreateClient(taken credential)", err, store.ErrConflict)
	_, err = s.GetClient(ctx, other.ID)
	wantErr(t, "client of a failed CreateClient", err, store.ErrNotFound)
	wantErr(t, "AddCredential(taken)", s.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredAPIKey, Hash: "apikey-hash-2", CreatedAt: t0}), store.ErrConflict)
	wantErr(t, "AddCredential(unknown client)", s.AddCredential(ctx, store.Credential{ClientID: newID(t), Kind: store.CredAPIKey, Hash: "h", CreatedAt: t0}), store.ErrNotFound)
	for _, bad := range []store.Credential{
		{ClientID: c.ID, Kind: store.CredAPIKey, Secret: "plain", CreatedAt: t0},
		{ClientID: c.ID, Kind: store.CredHMACSecret, Hash: "h", CreatedAt: t0},
		{ClientID: c.ID, Kind: "bogus", Hash: "h", CreatedAt: t0},
	} {
		if err := s.AddCredential(ctx, bad); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("AddCredential(%s with hash %t) = %v, want a validation error", bad.Kind, bad.Hash != "", err)
		}
	}

	if err := s.SetClientDisabled(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-2", now)
	wantErr(t, "FindCredential(disabled client)", err, store.ErrNotFound)
	if err := s.SetClientDisabled(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindCredential(ctx, store.CredAPIKey, "apikey-hash-2", now); err != nil {
		t.Errorf("FindCredential(re-enabled client): %v", err)
	}
}

func testCredentialsSealedAtRest(t *testing.T, s store.Store) {
	ctx := context.Background()
	secret := "hmac-secret-" + newID(t)
	c := newClient(t, "sealed")
	if err := s.CreateClient(ctx, c, []store.Credential{{Kind: store.CredHMACSecret, Secret: secret, CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, "client_credentials", secret)
	got, err := s.ClientCredentials(ctx, c.ID, store.CredHMACSecret, t0)
	if err != nil || len(got) != 1 || got[0].Secret != secret {
		t.Errorf("ClientCredentials = %d, %v", len(got), err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newClient(t, "tok")
	if err := s.CreateClient(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{Hash: "token-hash", ClientID: c.ID, Scope: "deletion", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "CreateToken(same hash)", s.CreateToken(ctx, tok), store.ErrConflict)
	wantErr(t, "CreateToken(unknown client)", s.CreateToken(ctx, store.Token{Hash: "h2", ClientID: newID(t), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}), store.ErrNotFound)

	got, err := s.FindToken(ctx, "token-hash", t0.Add(time.Hour-time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	want := tok
	want.CreatedAt, want.ExpiresAt = micro(t0), micro(t0.Add(time.Hour))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FindToken (-want +got):\n%s", diff)
	}
	_, err = s.FindToken(ctx, "token-hash", t0.Add(time.Hour))
	wantErr(t, "FindToken(expired)", err, store.ErrNotFound)
	_, err = s.FindToken(ctx, "other-hash", t0)
	wantErr(t, "FindToken(unknown)", err, store.ErrNotFound)

	// ExpireTokens shortens, never lengthens.
	long := store.Token{Hash: "long-hash", ClientID: c.ID, CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
	if err := s.CreateToken(ctx, long); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpireTokens(ctx, c.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindToken(ctx, "long-hash", t0.Add(2*time.Hour-time.Microsecond)); err != nil {
		t.Errorf("FindToken before the new expiry: %v", err)
	}
	_, err = s.FindToken(ctx, "long-hash", t0.Add(2*time.Hour))
	wantErr(t, "FindToken(at the new expiry)", err, store.ErrNotFound)
	if got, err := s.FindToken(ctx, "token-hash", t0); err != nil || !got.ExpiresAt.Equal(micro(t0.Add(time.Hour))) {
		t.Errorf("ExpireTokens lengthened an earlier expiry: %+v, %v", got, err)
	}

	if err := s.SetClientDisabled(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindToken(ctx, "token-hash", t0)
	wantErr(t, "FindToken(disabled client)", err, store.ErrNotFound)
	// Tokens die with the disable: enabling again does not revive them.
	if err := s.SetClientDisabled(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindToken(ctx, "token-hash", t0)
	wantErr(t, "FindToken(re-enabled client, token of before the disable)", err, store.ErrNotFound)
	fresh := store.Token{Hash: "fresh-hash", ClientID: c.ID, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindToken(ctx, "fresh-hash", t0); err != nil {
		t.Errorf("FindToken(token issued after re-enabling): %v", err)
	}
}

func testRateLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	const window, block = 10 * time.Minute, 10 * time.Minute
	take := func(key string, limit int, at time.Time, block time.Duration) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: key, Limit: limit, Window: window, Block: block, Now: at})
		if err != nil {
			t.Fatal(err)
		}
		return ok, retry
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
			ok, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "shared", Limit: limit, Window: 10 * time.Minute, Block: 10 * time.Minute, Now: t0.Add(time.Duration(i) * time.Millisecond)})
			if err != nil {
				t.Errorf("TakeRateLimit: %v", err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != limit {
		t.Errorf("%d of %d concurrent takes allowed, want %d", got, takes, limit)
	}
}

var errRollback = errors.New("roll back")

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
	if ok, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: "after-tx", Limit: 1, Window: time.Minute, Block: time.Minute, Now: t0}); err != nil || !ok {
		t.Errorf("store after transactions: %v, %v", ok, err)
	}
}

func testLockRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	if _, err := s.LockRequest(ctx, r.ID); err == nil {
		t.Error("LockRequest outside a transaction succeeded")
	}
	// Read-modify-write under the lock from many goroutines: with a
	// working lock no increment is lost.
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.InTx(ctx, func(tx store.Tx) error {
				got, err := tx.LockRequest(ctx, r.ID)
				if err != nil {
					return err
				}
				return tx.AppendAudit(ctx, &lethe.AuditEvent{
					RequestID: got.ID, Time: t0, Actor: lethe.ActorSystem, Type: "locked",
					Details: map[string]string{"stage": string(got.Stage)},
				})
			})
			if err != nil {
				t.Errorf("locked update: %v", err)
			}
		})
	}
	wg.Wait()
	es, err := s.ListAudit(ctx, r.ID)
	if err != nil || len(es) != n {
		t.Fatalf("ListAudit = %d, %v", len(es), err)
	}
	verifyChain(t, es)
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.LockRequest(ctx, newID(t))
		return err
	})
	wantErr(t, "LockRequest(unknown)", err, store.ErrNotFound)
}

// rawRows returns every row of query as byte strings, read around the
// store through its driver.
func rawRows(t *testing.T, s store.Store, query string) [][][]byte {
	t.Helper()
	ctx := context.Background()
	var out [][][]byte
	switch db := s.Driver().(type) {
	case *sql.DB:
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, toBytes(vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case *pgxpool.Pool:
		rows, err := db.Query(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, toBytes(vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("cannot read %T raw", db)
	}
	return out
}

func toBytes(vals []any) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case []byte:
			out[i] = v
		case string:
			out[i] = []byte(v)
		default:
			out[i] = fmt.Append(nil, v)
		}
	}
	return out
}

// assertAbsent fails if plaintext appears in any column of any row of table.
func assertAbsent(t *testing.T, s store.Store, table, plaintext string) {
	t.Helper()
	rows := rawRows(t, s, "SELECT * FROM "+table)
	if len(rows) == 0 {
		t.Fatalf("table %s is empty; nothing was checked", table)
	}
	for _, row := range rows {
		for _, col := range row {
			if bytes.Contains(col, []byte(plaintext)) {
				t.Fatalf("table %s holds the plaintext", table)
			}
		}
	}
}
