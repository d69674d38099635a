package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func newStatusEvent(t *testing.T, requestID string, status lethe.Status) *store.CallbackEvent {
	t.Helper()
	return &store.CallbackEvent{
		ID:        newID(t),
		RequestID: requestID,
		Status:    status,
		ClientID:  "c1",
		URL:       "https://receiver.example/hook",
		Body:      []byte(`{"status":"` + string(status) + `"}`),
		CreatedAt: t0,
	}
}

func testStatusEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityEmail, Value: "cb@example.com"}))
	other := mustCreate(t, s, newRequest(t, "c1", lethe.Identity{Type: lethe.IdentityEmail, Value: "cb2@example.com"}))

	if _, err := s.GetCallbackEvent(ctx, newID(t)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCallbackEvent of a missing event: %v, want ErrNotFound", err)
	}
	if es, err := s.ListCallbackEvents(ctx, r.ID); err != nil || len(es) != 0 {
		t.Fatalf("ListCallbackEvents before any: %v, %v", es, err)
	}

	// Seq counts per request, in one transaction with the caller's change.
	create := func(q store.Queries, e *store.CallbackEvent) error {
		t.Helper()
		seq, err := q.NextCallbackSeq(ctx, e.RequestID)
		if err != nil {
			return err
		}
		e.Seq = seq
		return q.CreateCallbackEvent(ctx, e)
	}
	e1 := newStatusEvent(t, r.ID, lethe.StatusRunning)
	e2 := newStatusEvent(t, r.ID, lethe.StatusCompleted)
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := create(tx, e1); err != nil {
			return err
		}
		return create(tx, e2)
	})
	if err != nil {
		t.Fatal(err)
	}
	eo := newStatusEvent(t, other.ID, lethe.StatusCanceled)
	if err := create(s, eo); err != nil {
		t.Fatal(err)
	}
	if e1.Seq != 1 || e2.Seq != 2 || eo.Seq != 1 {
		t.Fatalf("seqs = %d, %d, %d; want 1, 2 and 1 (per request)", e1.Seq, e2.Seq, eo.Seq)
	}
	// Reminders take -1, -2, ...; status events keep 1, 2, ... without
	// gaps; a negative seq is only a reminder's.
	rr := mustCreate(t, s, newRequest(t, "c1"))
	for i, want := range []int{-1, -2} {
		seq, err := s.NextReminderSeq(ctx, rr.ID)
		if err != nil || seq != want {
			t.Fatalf("NextReminderSeq %d = %d, %v; want %d", i, seq, err, want)
		}
		rem := newStatusEvent(t, rr.ID, lethe.StatusRunning)
		rem.Seq, rem.Format, rem.ClientID = seq, store.CallbackFormatReminder, ""
		if err := s.CreateCallbackEvent(ctx, rem); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := s.NextCallbackSeq(ctx, rr.ID); err != nil || seq != 1 {
		t.Errorf("NextCallbackSeq after two reminders = %d, %v; want 1", seq, err)
	}
	notRem := newStatusEvent(t, rr.ID, lethe.StatusRunning)
	notRem.Seq = -3
	if err := s.CreateCallbackEvent(ctx, notRem); err == nil {
		t.Error("a status event with a negative seq was stored")
	}
	// A duplicate id, or a seq taken, is a conflict, not a second row; on
	// postgres the transaction stays usable after it.
	dup := *e1
	dup.Seq = 3
	sameSeq := newStatusEvent(t, r.ID, lethe.StatusFailed)
	sameSeq.Seq = 2
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateCallbackEvent(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate event id: %v, want ErrConflict", err)
		}
		if err := tx.CreateCallbackEvent(ctx, sameSeq); !errors.Is(err, store.ErrConflict) {
			t.Errorf("seq taken: %v, want ErrConflict", err)
		}
		_, err := tx.NextCallbackSeq(ctx, r.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A rolled-back change leaves no event behind.
	errRollback := errors.New("rollback")
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := create(tx, newStatusEvent(t, r.ID, lethe.StatusFailed)); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}

	got, err := s.GetCallbackEvent(ctx, e1.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *e1
	want.CreatedAt = micro(t0)
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("GetCallbackEvent (-want +got):\n%s", diff)
	}

	a1 := store.CallbackAttempt{Time: t0.Add(time.Second), Duration: 1500 * time.Microsecond, HTTPStatus: 500, Error: "http_status"}
	a2 := store.CallbackAttempt{Time: t0.Add(time.Minute), Duration: 10 * time.Second, Error: "timeout"}
	a3 := store.CallbackAttempt{Time: t0.Add(time.Hour), Duration: 2 * time.Millisecond, HTTPStatus: 204}
	for i, a := range []store.CallbackAttempt{a1, a2, a3} {
		n, err := s.RecordCallbackAttempt(ctx, e1.ID, a)
		if err != nil || n != i+1 {
			t.Fatalf("RecordCallbackAttempt %d: n %d err %v", i+1, n, err)
		}
	}
	if _, err := s.RecordCallbackAttempt(ctx, newID(t), a1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attempt of a missing event: %v, want ErrNotFound", err)
	}
	// A pending event's URL is sealed at rest (GetCallbackEvent opened it
	// above); an ended event keeps none.
	assertAbsent(t, s, "callback_events", "receiver.example")
	ok, err := s.EndCallbackEvent(ctx, e1.ID, store.CallbackDelivered, t0.Add(time.Hour))
	if err != nil || !ok {
		t.Fatalf("EndCallbackEvent: ok %v err %v", ok, err)
	}
	if rows := rawRows(t, s, "SELECT url FROM callback_events WHERE id = '"+e1.ID+"'"); len(rows) != 1 || len(rows[0][0]) != 0 {
		t.Errorf("raw url of a delivered event = %q, want empty", rows)
	}
	ok, err = s.EndCallbackEvent(ctx, e1.ID, store.CallbackAbandoned, t0.Add(2*time.Hour))
	if err != nil || ok {
		t.Fatalf("second EndCallbackEvent: ok %v err %v, want false", ok, err)
	}
	if _, err := s.EndCallbackEvent(ctx, e2.ID, store.CallbackPending, t0); err == nil {
		t.Error("EndCallbackEvent to pending succeeded")
	}
	if _, err := s.RecordCallbackAttempt(ctx, e1.ID, a1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("attempt of an ended event: %v, want ErrConflict", err)
	}

	es, err := s.ListCallbackEvents(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(a store.CallbackAttempt, n int) store.CallbackAttempt {
		a.Attempt, a.Time = n, micro(a.Time)
		return a
	}
	wantList := []store.CallbackEvent{want, *e2}
	wantList[0].State, wantList[0].EndedAt, wantList[0].URL = store.CallbackDelivered, micro(t0.Add(time.Hour)), ""
	wantList[0].Attempts = []store.CallbackAttempt{norm(a1, 1), norm(a2, 2), norm(a3, 3)}
	wantList[1].CreatedAt = micro(t0)
	if diff := cmp.Diff(wantList, es); diff != "" {
		t.Errorf("ListCallbackEvents (-want +got):\n%s", diff)
	}
}
