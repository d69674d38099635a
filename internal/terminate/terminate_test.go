package terminate_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

var email = lethe.Identity{Type: lethe.IdentityEmail, Value: "ada@example.com"}

// probe is a StatusEvents that records what the store held at the moment
// the status event was stored, which is where the order of effects shows.
type probe struct {
	called     int
	status     lethe.Status
	events     []lethe.EventType
	suppressed bool
	receipt    bool
	identities int
}

func (p *probe) StoreStatusEvent(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task) error {
	p.called++
	p.status = req.Status
	es, err := tx.ListAudit(ctx, req.ID)
	if err != nil {
		return err
	}
	for _, e := range es {
		p.events = append(p.events, e.Type)
	}
	got, err := tx.CheckSuppressions(ctx, store.Scope{All: true}, []lethe.Identity{email})
	if err != nil {
		return err
	}
	p.suppressed = got[0]
	_, err = tx.GetReceipt(ctx, req.ID, store.Scope{All: true})
	p.receipt = err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	ids, err := tx.RequestIdentities(ctx, req.ID)
	p.identities = len(ids)
	return err
}

func newRequest(t *testing.T, st store.Store, status lethe.Status, stage lethe.Stage) *lethe.Request {
	t.Helper()
	now := time.Now()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR, Status: lethe.StatusReceived, Stage: lethe.StageResolve,
		Identities: []lethe.Identity{email}, SubjectKey: uuid.NewString(), CallbackURL: "https://partner.example/cb",
		ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
	}
	ctx := context.Background()
	if err := st.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if status != lethe.StatusReceived {
		if ok, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: status, ToStage: stage, At: now}); err != nil || !ok {
			t.Fatalf("move to %s/%s: %v %v", status, stage, ok, err)
		}
	}
	return r
}

func TestTerminateRunsEffectsInOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from     lethe.Status
		stage    lethe.Stage
		to       lethe.Status
		suppress bool // whether the identities end on the suppression list
		// keep: a failed request keeps its identities sealed for a
		// re-drive until it is closed.
		keep bool
		want []lethe.EventType
	}{
		{lethe.StatusRunning, lethe.StageFinish, lethe.StatusCompleted, true, false,
			[]lethe.EventType{lethe.EventRequestCompleted, lethe.EventRequestSuppressed, lethe.EventReceiptIssued, lethe.EventIdentitiesDropped}},
		{lethe.StatusRunning, lethe.StageFinish, lethe.StatusFailed, false, true,
			[]lethe.EventType{lethe.EventRequestFailed, lethe.EventReceiptIssued}},
		{lethe.StatusReceived, lethe.StageResolve, lethe.StatusFailed, false, true,
			[]lethe.EventType{lethe.EventRequestFailed, lethe.EventReceiptIssued}},
		{lethe.StatusReceived, lethe.StageResolve, lethe.StatusCanceled, false, false,
			[]lethe.EventType{lethe.EventRequestCanceled, lethe.EventReceiptIssued, lethe.EventIdentitiesDropped}},
		{lethe.StatusHeld, lethe.StageResolve, lethe.StatusDenied, false, false,
			[]lethe.EventType{lethe.EventRequestDenied, lethe.EventReceiptIssued, lethe.EventIdentitiesDropped}},
	} {
		t.Run(string(tc.from)+"_to_"+string(tc.to), func(t *testing.T) {
			t.Parallel()
			testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
				ctx := context.Background()
				pub, priv, err := ed25519.GenerateKey(nil)
				if err != nil {
					t.Fatal(err)
				}
				signer := audit.NewSigner(priv)
				events := &probe{}
				path := terminate.Path{Signer: signer, Suppress: true, Events: events}
				r := newRequest(t, st, tc.from, tc.stage)
				at := time.Now()
				var ended bool
				err = st.InTx(ctx, func(tx store.Tx) error {
					req, err := tx.LockRequest(ctx, r.ID)
					if err != nil {
						return err
					}
					ended, err = path.Terminate(ctx, tx, req, nil, terminate.Ending{To: tc.to, At: at, Details: map[string]string{"why": "test"}})
					return err
				})
				if err != nil || !ended {
					t.Fatalf("Terminate = %v, %v", ended, err)
				}

				// The status event saw the terminal event and the
				// suppression entry, but no receipt yet and the values
				// still there.
				if events.called != 1 || events.status != tc.to {
					t.Fatalf("status event: called %d times with status %s", events.called, events.status)
				}
				before := tc.want[:slices.Index(tc.want, lethe.EventReceiptIssued)]
				if !slices.Equal(events.events, before) {
					t.Errorf("events when the status event was stored: %v; want %v", events.events, before)
				}
				if events.suppressed != tc.suppress {
					t.Errorf("suppressed when the status event was stored = %v, want %v", events.suppressed, tc.suppress)
				}
				if events.receipt {
					t.Error("the receipt was issued before the status event was stored")
				}
				if events.identities != 1 {
					t.Errorf("identity values when the status event was stored: %d, want 1", events.identities)
				}

				// The audit trail, in order, after what the request had.
				es, err := st.ListAudit(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				var got []lethe.EventType
				for _, e := range es {
					got = append(got, e.Type)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("events = %v, want %v", got, tc.want)
				}
				if es[0].Details["why"] != "test" || es[0].Actor != lethe.ActorSystem {
					t.Errorf("terminal event: %+v", es[0])
				}

				// The receipt verifies, covers the chain up to its own
				// event, and says how the request ended.
				rc, err := st.GetReceipt(ctx, r.ID, store.Scope{All: true})
				if err != nil {
					t.Fatal(err)
				}
				doc, err := audit.Verify(rc.Body, map[string]ed25519.PublicKey{signer.KeyID(): pub})
				if err != nil {
					t.Fatalf("receipt does not verify: %v", err)
				}
				if doc.Status != tc.to || doc.Audit.Events != int64(len(before)) || doc.CompletedAt == "" {
					t.Errorf("receipt: status %s, %d events, completed %q", doc.Status, doc.Audit.Events, doc.CompletedAt)
				}

				// Nothing of the identity's value is left (unless the end
				// can be re-driven); its hash is.
				if ids, err := st.RequestIdentities(ctx, r.ID); err != nil || (len(ids) == 1) != tc.keep {
					t.Errorf("identities after terminate: %v, %v; want kept %v", ids, err, tc.keep)
				}
				if hs, err := st.RequestIdentityHashes(ctx, r.ID); err != nil || len(hs) != 1 {
					t.Errorf("identity hashes after terminate: %v, %v", hs, err)
				}
				sup, err := st.CheckSuppressions(ctx, store.Scope{All: true}, []lethe.Identity{email})
				if err != nil || sup[0] != tc.suppress {
					t.Errorf("suppressed = %v, %v; want %v", sup, err, tc.suppress)
				}
				stored, err := st.GetRequest(ctx, r.ID, store.Scope{All: true})
				if err != nil || stored.Status != tc.to || stored.Stage != lethe.StageDone || !stored.CompletedAt.Equal(at.UTC().Truncate(time.Microsecond)) {
					t.Errorf("request after terminate: %+v, %v", stored, err)
				}
			})
		})
	}
}

// Closing a failed request drops what the failure kept, and issues the
// receipt again over the close; a request that is not failed, or already
// closed, is not closed.
func TestCloseDropsWhatAFailureKept(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		signer := audit.NewSigner(priv)
		path := terminate.Path{Signer: signer}
		r := newRequest(t, st, lethe.StatusRunning, lethe.StageFinish)
		end := func(fn func(tx store.Tx, req *lethe.Request) (bool, error)) bool {
			t.Helper()
			var ok bool
			if err := st.InTx(ctx, func(tx store.Tx) error {
				req, err := tx.LockRequest(ctx, r.ID)
				if err != nil {
					return err
				}
				ok, err = fn(tx, req)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		closeIt := func(tx store.Tx, req *lethe.Request) (bool, error) {
			return path.Close(ctx, tx, req, nil, terminate.Closing{Actor: lethe.ActorAdmin, ActorID: "ada", At: time.Now()})
		}
		if end(closeIt) {
			t.Fatal("Close closed a running request")
		}
		if !end(func(tx store.Tx, req *lethe.Request) (bool, error) {
			return path.Terminate(ctx, tx, req, nil, terminate.Ending{To: lethe.StatusFailed, At: time.Now()})
		}) {
			t.Fatal("Terminate to failed did not end the request")
		}
		if !end(closeIt) {
			t.Fatal("Close did not close the failed request")
		}
		if end(closeIt) {
			t.Error("Close closed a request twice")
		}
		es, err := st.ListAudit(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []lethe.EventType
		for _, e := range es {
			got = append(got, e.Type)
		}
		want := []lethe.EventType{lethe.EventRequestFailed, lethe.EventReceiptIssued, lethe.EventRequestClosed, lethe.EventReceiptIssued, lethe.EventIdentitiesDropped}
		if !slices.Equal(got, want) {
			t.Errorf("events = %v, want %v", got, want)
		}
		if es[2].ActorID != "ada" {
			t.Errorf("close event by %q, want ada", es[2].ActorID)
		}
		if ids, err := st.RequestIdentities(ctx, r.ID); err != nil || len(ids) != 0 {
			t.Errorf("identities after close: %v, %v", ids, err)
		}
		rc, err := st.GetReceipt(ctx, r.ID, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := audit.Verify(rc.Body, map[string]ed25519.PublicKey{signer.KeyID(): pub})
		if err != nil {
			t.Fatalf("receipt does not verify: %v", err)
		}
		if doc.Status != lethe.StatusFailed || doc.Audit.Events != 3 {
			t.Errorf("receipt after close: status %s over %d events, want failed over 3", doc.Status, doc.Audit.Events)
		}
		stored, err := st.GetRequest(ctx, r.ID, store.Scope{All: true})
		if err != nil || stored.Stage != lethe.StageClosed || lethe.Redrivable(stored.Status, stored.Stage) {
			t.Errorf("request after close: %+v, %v", stored, err)
		}
	})
}

// A request another transaction has already ended is left alone.
func TestTerminateLosesToAnEarlierEnd(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		r := newRequest(t, st, lethe.StatusRunning, lethe.StageFinish)
		events := &probe{}
		err := st.InTx(ctx, func(tx store.Tx) error {
			req, err := tx.LockRequest(ctx, r.ID)
			if err != nil {
				return err
			}
			// Read before another end committed: the stale copy says
			// running/verify, so the compare-and-set must lose.
			req.Stage = lethe.StageVerify
			ok, err := terminate.Path{Events: events}.Terminate(ctx, tx, req, nil, terminate.Ending{To: lethe.StatusFailed, At: time.Now()})
			if ok {
				t.Error("Terminate won on a stale request")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if es, _ := st.ListAudit(ctx, r.ID); len(es) != 0 || events.called != 0 {
			t.Errorf("a lost compare-and-set still recorded %d events, %d status events", len(es), events.called)
		}
		if ids, err := st.RequestIdentities(ctx, r.ID); err != nil || len(ids) != 1 {
			t.Errorf("a lost compare-and-set dropped identities: %v, %v", ids, err)
		}
	})
}

func TestTerminateRefusesOpenStatuses(t *testing.T) {
	t.Parallel()
	st := testdb.OpenStore(t, "sqlite")
	r := newRequest(t, st, lethe.StatusReceived, lethe.StageResolve)
	ctx := context.Background()
	for _, to := range []lethe.Status{lethe.StatusReceived, lethe.StatusRunning, "bogus"} {
		err := st.InTx(ctx, func(tx store.Tx) error {
			req, err := tx.LockRequest(ctx, r.ID)
			if err != nil {
				return err
			}
			_, err = terminate.Path{}.Terminate(ctx, tx, req, nil, terminate.Ending{To: to, At: time.Now()})
			return err
		})
		if err == nil {
			t.Errorf("Terminate to %q succeeded", to)
		}
	}
}
