package pipeline

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/netguard"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// Every terminal transition ends through Terminate: the same effects in
// the same order, whichever step ended the request.
func TestEveryEndTerminates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		to     lethe.Status
		target func() *memTarget
		cancel bool // canceled through intake before any worker runs
		// statusEvents stored: running (when it ran) and the end.
		statusEvents int
	}{
		{name: "completed", to: lethe.StatusCompleted, target: newMemTarget, statusEvents: 2},
		{name: "failed_in_finish", to: lethe.StatusFailed, statusEvents: 2, target: func() *memTarget {
			m := newMemTarget()
			m.eraseErr = connector.Permanent(errors.New("table is read-only"))
			return m
		}},
		{name: "failed_in_resolve", to: lethe.StatusFailed, statusEvents: 1, target: func() *memTarget {
			m := newMemTarget()
			m.resolveErr = connector.Permanent(errors.New("lookup refused"))
			return m
		}},
		{name: "canceled", to: lethe.StatusCanceled, target: newMemTarget, cancel: true, statusEvents: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachDialect(t, func(t *testing.T, st store.Store) {
				ctx := context.Background()
				kr := testdb.Keyring(t)
				signer, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
				if err != nil {
					t.Fatal(err)
				}
				rcv := newReceiver(t, always(http.StatusOK))
				cfg := callbackConfig()
				cfg.Signer = signer
				cfg.Suppression = true
				target := tc.target()
				target.rows[email] = 3
				p := build(t, st, cfg, Target{"db", target})

				var id string
				if tc.cancel {
					in := intake.New(st, p, kr, intake.Config{Terminator: p, CallbackURLs: netguard.CallbackURLs{Guard: loopbackGuard}})
					req, _, err := in.Submit(ctx, intake.Submission{
						Actor: lethe.ActorAdmin, Identities: []lethe.Identity{email}, CallbackURL: rcv.srv.URL,
					})
					if err != nil {
						t.Fatal(err)
					}
					if _, err := in.Cancel(ctx, store.Scope{All: true}, req.ID, lethe.ActorAdmin, ""); err != nil {
						t.Fatal(err)
					}
					id = req.ID
				} else {
					id = submitWithCallback(t, st, p, "", rcv.srv.URL, email)
				}
				startBuilt(t, p)
				waitDone(t, st, id, tc.to)
				events := waitCallbacks(t, st, id, tc.statusEvents)

				// Audit events: the terminal one, then suppression (of a
				// completed request), the receipt, the forgetting (but for a
				// failed request), and nothing after.
				want := []lethe.EventType{lethe.StatusEvent(tc.to)}
				if tc.to == lethe.StatusCompleted {
					want = append(want, lethe.EventRequestSuppressed)
				}
				want = append(want, lethe.EventReceiptIssued)
				if tc.to != lethe.StatusFailed { // a failed one keeps them for a re-drive
					want = append(want, lethe.EventIdentitiesDropped)
				}
				es, err := st.ListAudit(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				var got []lethe.EventType
				for _, e := range es {
					got = append(got, e.Type)
				}
				if len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) {
					t.Fatalf("audit events %v; want them to end with %v", got, want)
				}
				for _, e := range es {
					if e.Type == lethe.EventRequestRunning && tc.to == lethe.StatusCanceled {
						t.Errorf("a canceled request ran: %v", got)
					}
				}

				// Suppression: only a completed request's identities.
				sup, err := st.CheckSuppressions(ctx, store.Scope{All: true}, []lethe.Identity{email})
				if err != nil || sup[0] != (tc.to == lethe.StatusCompleted) {
					t.Errorf("suppressed = %v, %v", sup, err)
				}

				// The last status event says how it ended.
				if last := events[len(events)-1]; last.Status != tc.to {
					t.Errorf("last status event is %s, want %s", last.Status, tc.to)
				}

				// The receipt verifies, and its chain stops before its own
				// event: it covers the end and the suppression.
				rc, err := st.GetReceipt(ctx, id, store.Scope{All: true})
				if err != nil {
					t.Fatal(err)
				}
				keys, err := audit.KeyMap(ctx, st)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := audit.Verify(rc.Body, keys)
				if err != nil {
					t.Fatalf("receipt does not verify: %v", err)
				}
				after := 2 // the receipt's own event and the forgetting
				if tc.to == lethe.StatusFailed {
					after = 1
				}
				if doc.Status != tc.to || doc.Audit.Events != int64(len(got)-after) {
					t.Errorf("receipt: status %s over %d events; want %s over %d", doc.Status, doc.Audit.Events, tc.to, len(got)-after)
				}

				// Then no identity value is left, unless the request failed
				// and can still be re-driven.
				wantIDs := 0
				if tc.to == lethe.StatusFailed {
					wantIDs = 1
				}
				if ids, err := st.RequestIdentities(ctx, id); err != nil || len(ids) != wantIDs {
					t.Errorf("identity values left: %d, %v; want %d", len(ids), err, wantIDs)
				}
			})
		})
	}
}
