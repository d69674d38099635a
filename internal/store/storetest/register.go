package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// testOperators covers named operators: unique names and token hashes,
// lookup by token only while enabled, rotation ending the old token.
func testOperators(t *testing.T, s store.Store) {
	ctx := context.Background()
	o := store.Operator{Name: "ana", Role: "reviewer", TokenHash: "h1", CreatedAt: t0}
	if err := s.CreateOperator(ctx, o); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "same name", s.CreateOperator(ctx, store.Operator{Name: "ana", Role: "viewer", TokenHash: "h2", CreatedAt: t0}), store.ErrConflict)
	wantErr(t, "same token", s.CreateOperator(ctx, store.Operator{Name: "bob", Role: "viewer", TokenHash: "h1", CreatedAt: t0}), store.ErrConflict)
	if err := s.CreateOperator(ctx, store.Operator{Name: "bob", Role: "viewer", TokenHash: "hb", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, store.Operator{Name: "eve", Role: "root", TokenHash: "he", CreatedAt: t0}); err == nil {
		t.Error("an unknown role was stored")
	}
	got, err := s.FindOperatorByToken(ctx, "h1")
	if err != nil || got.Name != "ana" || got.Role != "reviewer" || !got.CreatedAt.Equal(micro(t0)) {
		t.Fatalf("FindOperatorByToken = %+v, %v", got, err)
	}
	if err := s.SetOperatorDisabled(ctx, "ana", true); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindOperatorByToken(ctx, "h1")
	wantErr(t, "disabled operator's token", err, store.ErrNotFound)
	if err := s.SetOperatorDisabled(ctx, "ana", false); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "disable nobody", s.SetOperatorDisabled(ctx, "nobody", true), store.ErrNotFound)
	if err := s.RotateOperatorToken(ctx, "ana", "h3", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindOperatorByToken(ctx, "h1")
	wantErr(t, "rotated-out token", err, store.ErrNotFound)
	if got, err := s.FindOperatorByToken(ctx, "h3"); err != nil || got.Name != "ana" {
		t.Fatalf("new token: %+v, %v", got, err)
	}
	wantErr(t, "rotate to a taken hash", s.RotateOperatorToken(ctx, "ana", "hb", t0), store.ErrConflict)
	wantErr(t, "rotate nobody", s.RotateOperatorToken(ctx, "nobody", "hx", t0), store.ErrNotFound)
	ops, err := s.ListOperators(ctx)
	if err != nil || len(ops) != 2 || ops[0].Name != "ana" || ops[1].Name != "bob" || ops[0].TokenHash != "" ||
		!ops[0].RotatedAt.Equal(micro(t0.Add(time.Hour))) || !ops[1].RotatedAt.IsZero() {
		t.Fatalf("ListOperators = %+v, %v", ops, err)
	}
}

// testExtensions covers the one extension of a request.
func testExtensions(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c"))
	if ok, err := s.FlagDeadline(ctx, r.ID, store.FlagDueSoon, t0); err != nil || !ok {
		t.Fatalf("FlagDeadline = %v, %v", ok, err)
	}
	_, err := s.GetExtension(ctx, r.ID)
	wantErr(t, "extension before any", err, store.ErrNotFound)
	e := store.Extension{RequestID: r.ID, PreviousDue: r.DueAt, Due: r.DueAt.Add(20 * 24 * time.Hour),
		Reason: "complex", Actor: lethe.ActorOperator, ActorID: "ana", At: t0.Add(time.Hour)}
	if ok, err := s.ExtendRequest(ctx, e); err != nil || !ok {
		t.Fatalf("ExtendRequest = %v, %v", ok, err)
	}
	e2 := e
	e2.Due = e.Due.Add(time.Hour)
	if ok, err := s.ExtendRequest(ctx, e2); err != nil || ok {
		t.Fatalf("second ExtendRequest = %v, %v; want false", ok, err)
	}
	got, err := s.GetExtension(ctx, r.ID)
	want := e
	want.PreviousDue, want.Due, want.At = micro(e.PreviousDue), micro(e.Due), micro(e.At)
	if err != nil || !cmp.Equal(got, want) {
		t.Fatalf("GetExtension = %+v, %v; want %+v", got, err, want)
	}
	cur, err := s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if err != nil || !cur.DueAt.Equal(micro(e.Due)) {
		t.Fatalf("due after extension = %v, %v", cur.DueAt, err)
	}
	// The warning was about the old date: the sweep may warn again.
	if ok, err := s.FlagDeadline(ctx, r.ID, store.FlagDueSoon, t0); err != nil || !ok {
		t.Fatalf("FlagDeadline after extension = %v, %v; want a fresh flag", ok, err)
	}
	if ok, err := s.ExtendRequest(ctx, store.Extension{RequestID: newID(t), PreviousDue: t0, Due: t0, Reason: "x", Actor: lethe.ActorAdmin, At: t0}); err == nil || ok {
		t.Fatalf("extending a missing request = %v, %v", ok, err)
	}
}

// closeRequest ends r as status at at, with one task per target.
func closeRequest(t *testing.T, s store.Store, r *lethe.Request, status lethe.Status, at time.Time, targets map[string]lethe.TaskState) {
	t.Helper()
	ctx := context.Background()
	if len(targets) > 0 {
		names := make([]string, 0, len(targets))
		for n := range targets {
			names = append(names, n)
		}
		if err := s.CreateTasks(ctx, r.ID, names, at); err != nil {
			t.Fatal(err)
		}
		for n, st := range targets {
			if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: n, State: st, At: at,
				Report: lethe.Report{Items: []lethe.ReportItem{{Object: "users", Action: lethe.ActionDelete, Rows: 3}}}}); err != nil || !ok {
				t.Fatalf("FinishTask = %v, %v", ok, err)
			}
		}
	}
	ok, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: status, ToStage: lethe.StageDone, At: at, Outcome: lethe.OutcomeErased})
	if err != nil || !ok {
		t.Fatalf("UpdateRequestState = %v, %v", ok, err)
	}
}

// testRegister covers the register: live and archived requests in one
// ordered, filtered, scoped page; archiving in the purge's transaction;
// the register's own retention; receipts listed.
func testRegister(t *testing.T, s store.Store) {
	ctx := context.Background()
	day := 24 * time.Hour
	// Four requests, received a day apart: a (client c1) closed and
	// archived, b (c2) closed and live, c (c1) open and extended, d (admin)
	// canceled and archived.
	var rs []*lethe.Request
	for i, client := range []string{"c1", "c2", "c1", ""} {
		r := newRequest(t, client)
		r.ReceivedAt = t0.Add(time.Duration(i) * day)
		r.DueAt = r.ReceivedAt.Add(30 * day)
		rs = append(rs, mustCreate(t, s, r))
	}
	a, b, c, d := rs[0], rs[1], rs[2], rs[3]
	closeRequest(t, s, a, lethe.StatusCompleted, t0.Add(5*day), map[string]lethe.TaskState{"db": lethe.TaskDone, "crm": lethe.TaskSkipped})
	closeRequest(t, s, b, lethe.StatusFailed, t0.Add(6*day), map[string]lethe.TaskState{"db": lethe.TaskFailed})
	closeRequest(t, s, d, lethe.StatusCanceled, t0.Add(4*day), nil)
	for _, e := range []*lethe.AuditEvent{
		{RequestID: a.ID, Time: t0.Add(day), Actor: lethe.ActorSystem, Type: lethe.EventRequestRunning},
		{RequestID: a.ID, Time: t0.Add(2 * day), Actor: lethe.ActorOperator, ActorID: "ana", Type: lethe.EventRequestExtended},
		{RequestID: d.ID, Time: t0.Add(4 * day), Actor: lethe.ActorAdmin, Type: lethe.EventRequestCanceled},
		{RequestID: c.ID, Time: t0.Add(3 * day), Actor: lethe.ActorOperator, ActorID: "bob", Type: lethe.EventRequestExtended},
	} {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	aDue := a.DueAt
	if _, err := s.ExtendRequest(ctx, store.Extension{RequestID: a.ID, PreviousDue: a.DueAt, Due: a.DueAt.Add(10 * day), Reason: "r", Actor: lethe.ActorOperator, ActorID: "ana", At: t0.Add(2 * day)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExtendRequest(ctx, store.Extension{RequestID: c.ID, PreviousDue: c.DueAt, Due: c.DueAt.Add(10 * day), Reason: "r", Actor: lethe.ActorOperator, ActorID: "bob", At: t0.Add(3 * day)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ArchiveRequest(ctx, c.ID); err == nil {
		t.Error("an open request was archived")
	}
	page := func(f store.RegisterFilter) []store.RegisterEntry {
		t.Helper()
		if f.Limit == 0 {
			f.Limit = 10
		}
		es, err := s.RegisterPage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	before := page(store.RegisterFilter{Scope: store.Scope{All: true}})
	for _, id := range []string{a.ID, d.ID} {
		err := s.InTx(ctx, func(tx store.Tx) error {
			if ok, err := tx.ArchiveRequest(ctx, id); err != nil || !ok {
				t.Errorf("ArchiveRequest = %v, %v", ok, err)
			}
			_, err := tx.DeleteRequest(ctx, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.ArchiveRequest(ctx, a.ID); err != nil || ok {
		t.Errorf("ArchiveRequest of a purged request = %v, %v; want false", ok, err)
	}
	all := page(store.RegisterFilter{Scope: store.Scope{All: true}})
	// Archiving changes where an entry comes from, nothing it says.
	for i := range before {
		before[i].Archived = all[i].Archived
	}
	if diff := cmp.Diff(before, all); diff != "" {
		t.Errorf("register changed by archiving (-before +after):\n%s", diff)
	}
	var ids []string
	for _, e := range all {
		ids = append(ids, e.RequestID)
	}
	if want := []string{a.ID, b.ID, c.ID, d.ID}; !cmp.Equal(ids, want) {
		t.Fatalf("register order = %v, want %v", ids, want)
	}
	wantA := store.RegisterEntry{
		RequestID: a.ID, ClientID: "c1", Regulation: lethe.GDPR, Status: lethe.StatusCompleted, Outcome: lethe.OutcomeErased,
		ReceivedAt: micro(a.ReceivedAt), DueAt: micro(aDue.Add(10 * day)), ExtendedFrom: micro(aDue), ClosedAt: micro(t0.Add(5 * day)),
		Targets:  []store.RegisterTarget{{Target: "crm", State: lethe.TaskSkipped}, {Target: "db", State: lethe.TaskDone}},
		Actions:  []store.OperatorAction{{Time: micro(t0.Add(2 * day)), Type: lethe.EventRequestExtended, Actor: lethe.ActorOperator, ActorID: "ana"}},
		Archived: true,
	}
	if diff := cmp.Diff(wantA, all[0]); diff != "" {
		t.Errorf("archived entry (-want +got):\n%s", diff)
	}
	if e := all[2]; e.Archived || e.Status != lethe.StatusReceived || !e.ClosedAt.IsZero() || !e.ExtendedFrom.Equal(micro(c.DueAt)) ||
		len(e.Actions) != 1 || e.Actions[0].ActorID != "bob" {
		t.Errorf("live open entry = %+v", e)
	}
	if e := all[3]; len(e.Actions) != 1 || e.Actions[0].Actor != lethe.ActorAdmin || len(e.Targets) != 0 {
		t.Errorf("archived canceled entry = %+v", e)
	}

	// The overview's aggregates: every request since a day, live and
	// archived; failed tasks of the failed, not closed b only.
	act, err := s.RegisterActivity(ctx, t0.Add(day))
	if err != nil {
		t.Fatal(err)
	}
	wantAct := []store.RegisterTimes{
		{ReceivedAt: micro(b.ReceivedAt), ClosedAt: micro(t0.Add(6 * day)), Status: lethe.StatusFailed},
		{ReceivedAt: micro(c.ReceivedAt), Status: lethe.StatusReceived},
		{ReceivedAt: micro(d.ReceivedAt), ClosedAt: micro(t0.Add(4 * day)), Status: lethe.StatusCanceled},
	}
	if diff := cmp.Diff(wantAct, act); diff != "" {
		t.Errorf("RegisterActivity (-want +got):\n%s", diff)
	}
	if f, err := s.FailingTasks(ctx); err != nil || !cmp.Equal(f, map[string]int{"db": 1}) {
		t.Errorf("FailingTasks = %v, %v; want db: 1", f, err)
	}

	// Pages, filters and scope.
	if p := page(store.RegisterFilter{Scope: store.Scope{All: true}, After: b.ID, Limit: 1}); len(p) != 1 || p[0].RequestID != c.ID {
		t.Errorf("page after b = %+v", p)
	}
	if p := page(store.RegisterFilter{Scope: store.Scope{ClientID: "c1"}}); len(p) != 2 || p[0].RequestID != a.ID || p[1].RequestID != c.ID {
		t.Errorf("c1's register = %+v", p)
	}
	if p := page(store.RegisterFilter{Scope: store.Scope{}}); len(p) != 0 {
		t.Errorf("zero scope sees %d entries", len(p))
	}
	if p := page(store.RegisterFilter{Scope: store.Scope{All: true}, Status: lethe.StatusCanceled}); len(p) != 1 || p[0].RequestID != d.ID {
		t.Errorf("canceled = %+v", p)
	}
	if p := page(store.RegisterFilter{Scope: store.Scope{All: true}, ReceivedFrom: t0.Add(day), ReceivedBefore: t0.Add(3 * day)}); len(p) != 2 || p[0].RequestID != b.ID || p[1].RequestID != c.ID {
		t.Errorf("received range = %+v", p)
	}

	// The register's retention counts from the closing.
	if n, err := s.PurgeRegister(ctx, t0.Add(4*day), 10); err != nil || n != 0 {
		t.Fatalf("PurgeRegister at the closing of d = %d, %v", n, err)
	}
	if n, err := s.PurgeRegister(ctx, t0.Add(4*day+time.Microsecond), 10); err != nil || n != 1 {
		t.Fatalf("PurgeRegister after d closed = %d, %v", n, err)
	}
	if p := page(store.RegisterFilter{Scope: store.Scope{All: true}}); len(p) != 3 || p[2].RequestID != c.ID {
		t.Errorf("after the register purge = %+v", p)
	}

	// Receipts are listed newest request first, scoped, by cursor.
	for _, r := range []*lethe.Request{a, b, d} {
		if err := s.PutReceipt(ctx, store.Receipt{RequestID: r.ID, ClientID: r.ClientID, KeyID: "k", Body: []byte("{}"), IssuedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.ListReceipts(ctx, store.Scope{All: true}, "", 2)
	if err != nil || len(recs) != 2 || recs[0].RequestID != d.ID || recs[1].RequestID != b.ID || recs[0].Body != nil {
		t.Fatalf("ListReceipts = %+v, %v", recs, err)
	}
	recs, err = s.ListReceipts(ctx, store.Scope{All: true}, b.ID, 2)
	if err != nil || len(recs) != 1 || recs[0].RequestID != a.ID || recs[0].ClientID != "c1" {
		t.Fatalf("ListReceipts after b = %+v, %v", recs, err)
	}
	recs, err = s.ListReceipts(ctx, store.Scope{ClientID: "c2"}, "", 10)
	if err != nil || len(recs) != 1 || recs[0].RequestID != b.ID {
		t.Fatalf("c2's receipts = %+v, %v", recs, err)
	}
	if recs, _ := s.ListReceipts(ctx, store.Scope{}, "", 10); len(recs) != 0 {
		t.Fatalf("zero scope lists %d receipts", len(recs))
	}
}
