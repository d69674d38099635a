package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func testRequestRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: "ada@example.com"},
		{Type: lethe.IdentityPhone, Value: "+4915112345678"},
	}
	r := newRequest(t, "c1", ids...)
	r.IdempotencyKey = "idem-1"
	r.CallbackURL = "https://example.com/cb?ref=round-trip"
	r.CallbackFormat = "drp"
	mustCreate(t, s, r)
	// Sealed at rest, opened on read (GetRequest below).
	assertAbsent(t, s, "requests", "ref=round-trip")

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

	ok, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusRunning}, To: lethe.StatusCompleted, ToStage: lethe.StageDone, At: t1})
	if err != nil || ok {
		t.Fatalf("update from a state it is not in = %v, %v; want false", ok, err)
	}
	ok, err = s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageErase}, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t1})
	if err != nil || ok {
		t.Fatalf("update from a stage it is not in = %v, %v; want false", ok, err)
	}
	reach := &lethe.Reach{Accounts: map[string]int{"shop/users": 1}, Unfollowed: []string{"shop/users.phone"}}
	ok, err = s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageResolve}, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t1, Reach: reach})
	if err != nil || !ok {
		t.Fatalf("update = %v, %v; want true", ok, err)
	}
	// A replay must not move StartedAt; without Reach it keeps the reach.
	ok, err = s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusRunning, ToStage: lethe.StageVerify, At: t2})
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
	if diff := cmp.Diff(reach, got.Reach); diff != "" || got.Outcome != "" {
		t.Errorf("after running: outcome %q, reach (-want +got):\n%s", got.Outcome, diff)
	}
	ok, err = s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived, lethe.StatusRunning}, To: lethe.StatusFailed, ToStage: lethe.StageDone, At: t2, Outcome: lethe.OutcomeAmbiguousSubject})
	if err != nil || !ok {
		t.Fatalf("finish = %v, %v", ok, err)
	}
	got, _ = s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if got.Status != lethe.StatusFailed || !got.CompletedAt.Equal(micro(t2)) || !got.StartedAt.Equal(micro(t1)) {
		t.Errorf("after failing: %+v", got)
	}
	if got.Outcome != lethe.OutcomeAmbiguousSubject || got.Reach == nil {
		t.Errorf("after failing: outcome %q reach %+v, want ambiguous_subject and the reach kept", got.Outcome, got.Reach)
	}
	latest, err := s.LatestRequestsBySubject(ctx, r.ClientID, []string{r.SubjectKey})
	if err != nil || latest[r.SubjectKey] == nil || latest[r.SubjectKey].Outcome != lethe.OutcomeAmbiguousSubject {
		t.Errorf("LatestRequestsBySubject = %+v, %v; want the outcome", latest[r.SubjectKey], err)
	}
	ok, err = s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: newID(t), To: lethe.StatusCanceled, ToStage: lethe.StageDone, At: t2})
	if err != nil || ok {
		t.Errorf("update of an unknown request = %v, %v; want false", ok, err)
	}
	if _, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: "bogus", ToStage: lethe.StageDone, At: t2}); err == nil {
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
				ok, err = s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageResolve}, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t0})
			} else {
				err = s.InTx(ctx, func(tx store.Tx) error {
					ok, err = tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageResolve}, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t0})
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
	withURL := newRequest(t, "c1", given...)
	withURL.CallbackURL = "https://hooks.example/cb?ref=drop-me"
	r := mustCreate(t, s, withURL)
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
	// Inside a transaction that changed the request's row the store knows
	// the request exists; once the transaction deleted it, it does not.
	gone := mustCreate(t, s, newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityUserID, Value: "gone"}))
	errRolledBack := errors.New("roll back")
	err = s.InTx(ctx, func(tx store.Tx) error {
		ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
			ID: gone.ID, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: time.Now(),
		})
		if err != nil || !ok {
			return fmt.Errorf("update: %v %v", ok, err)
		}
		if err := tx.AddLinkedIdentities(ctx, gone.ID, linked[1:2]); err != nil {
			return fmt.Errorf("after the update: %w", err)
		}
		if ok, err := tx.DeleteRequest(ctx, gone.ID); err != nil || !ok {
			return fmt.Errorf("delete: %v %v", ok, err)
		}
		if err := tx.AddLinkedIdentities(ctx, gone.ID, linked[2:]); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("after the delete: %v, want not found", err)
		}
		return errRolledBack
	})
	if !errors.Is(err, errRolledBack) {
		t.Errorf("linked identities in a transaction: %v", err)
	}

	// Read in the transaction that drops the values, the request's
	// callback URL goes too; a request read without one stays without.
	plain := mustCreate(t, s, newRequest(t, "c1", given[0]))
	err = s.InTx(ctx, func(tx store.Tx) error {
		for _, id := range []string{plain.ID, r.ID} {
			if _, err := tx.LockRequest(ctx, id); err != nil {
				return err
			}
			if err := tx.DropIdentityValues(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows := rawRows(t, s, "SELECT callback_url FROM requests WHERE id = '"+r.ID+"'"); len(rows) != 1 || len(rows[0][0]) != 0 {
		t.Errorf("raw callback_url after drop in a transaction = %q, want empty", rows)
	}
	if err := s.DropIdentityValues(ctx, r.ID); err != nil {
		t.Fatalf("DropIdentityValues twice: %v", err)
	}
	got, err = s.RequestIdentities(ctx, r.ID)
	if err != nil || len(got) != 0 {
		t.Errorf("RequestIdentities after drop = %d identities, %v", len(got), err)
	}
	// The callback_url goes with the identities: not even sealed.
	if after, err := s.GetRequest(ctx, r.ID, store.Scope{All: true}); err != nil || after.CallbackURL != "" {
		t.Errorf("callback_url after drop = %q (%v), want none", after.CallbackURL, err)
	}
	if rows := rawRows(t, s, "SELECT callback_url FROM requests WHERE id = '"+r.ID+"'"); len(rows) != 1 || len(rows[0][0]) != 0 {
		t.Errorf("raw callback_url after drop = %q, want empty", rows)
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

// requestOpts compares requests as read back: identities are never filled
// by reads, and nil and empty task lists mean the same.
var requestOpts = cmp.Options{
	cmpopts.IgnoreFields(lethe.Request{}, "Identities"),
	cmpopts.EquateEmpty(),
}
