package pipeline

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

// openRequest stores an open request under reg, received at received.
func openRequest(t *testing.T, st store.Store, clientID string, reg lethe.Regulation, received time.Time, callbackURL string) *lethe.Request {
	t.Helper()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), ClientID: clientID, ExternalID: "ticket-77", Regulation: reg,
		Status: lethe.StatusReceived, Stage: lethe.StageResolve, SubjectKey: randomHex(16), CallbackURL: callbackURL,
		Identities: []lethe.Identity{email},
		ReceivedAt: received, DueAt: received.Add(lethe.DefaultDeadlines[reg]), UpdatedAt: received,
	}
	if reg != lethe.GDPR && reg != lethe.CCPA {
		r.DueAt = received.Add(30 * 24 * time.Hour)
	}
	if err := st.CreateRequest(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExtendWithinTheLawsBound(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		rcv := newReceiver(t, always(http.StatusNoContent))
		p := build(t, st, callbackConfig())
		client := newClientWithSecret(t, st, clientSecret)
		ana := operators.WithPrincipal(context.Background(), operators.Principal{Name: "ana", Role: operators.RoleReviewer})
		received := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
		gdpr := openRequest(t, st, client, lethe.GDPR, received, rcv.srv.URL)
		ccpa := openRequest(t, st, client, lethe.CCPA, received, "")
		other := openRequest(t, st, "", "lgpd", received, "")
		gdprDue := gdpr.DueAt.UTC()

		// unchanged checks that a refused extension changed nothing.
		unchanged := func(r *lethe.Request) {
			t.Helper()
			cur := mustGet(t, st, r.ID)
			if !cur.DueAt.Equal(r.DueAt.UTC().Truncate(time.Microsecond)) {
				t.Errorf("due moved to %v", cur.DueAt)
			}
			if _, err := st.GetExtension(context.Background(), r.ID); err == nil {
				t.Error("an extension was stored")
			}
			if n := auditTypes(t, st, r.ID)[string(lethe.EventRequestExtended)]; n != 0 {
				t.Errorf("%d request.extended events", n)
			}
		}
		// 2026-03-02 + two months = 2026-05-02: 61 days are within,
		// 62 are not.
		bound := gdprDue.AddDate(0, 2, 0)
		for _, tc := range []struct {
			name string
			x    store.ExtendParams
			code string
		}{
			{"no reason", store.ExtendParams{Days: 10}, lethe.EINVALID},
			{"blank reason", store.ExtendParams{Days: 10, Reason: "  "}, lethe.EINVALID},
			{"neither days nor until", store.ExtendParams{Reason: "r"}, lethe.EINVALID},
			{"days and until", store.ExtendParams{Reason: "r", Days: 3, Until: bound}, lethe.EINVALID},
			{"negative days", store.ExtendParams{Reason: "r", Days: -3}, lethe.EINVALID},
			{"a day beyond two months", store.ExtendParams{Reason: "r", Until: bound.Add(24 * time.Hour)}, lethe.EINVALID},
			{"62 days", store.ExtendParams{Reason: "r", Days: int(bound.Sub(gdprDue).Hours()/24) + 1}, lethe.EINVALID},
			{"until before due", store.ExtendParams{Reason: "r", Until: gdprDue.Add(-time.Hour)}, lethe.EINVALID},
			{"another client's", store.ExtendParams{Reason: "r", Days: 3, Scope: store.Scope{ClientID: "someone-else"}}, lethe.ENOTFOUND},
		} {
			x := tc.x
			x.RequestID = gdpr.ID
			if x.Scope == (store.Scope{}) {
				x.Scope = store.Scope{All: true}
			}
			_, err := p.Extend(ana, x)
			if got := lethe.ErrorCode(err); got != tc.code {
				t.Errorf("%s: error %v (%s), want %s", tc.name, err, got, tc.code)
			}
			unchanged(gdpr)
		}
		if _, err := p.Extend(ana, store.ExtendParams{RequestID: other.ID, Scope: store.Scope{All: true}, Reason: "r", Days: 1}); lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("extending a regulation without a known bound: %v", err)
		}
		unchanged(other)

		// Up to the bound exactly: accepted once.
		got, err := p.Extend(ana, store.ExtendParams{RequestID: gdpr.ID, Scope: store.Scope{ClientID: client}, Reason: "  records in three archives ", Until: bound})
		if err != nil {
			t.Fatal(err)
		}
		if !got.DueAt.Equal(bound) {
			t.Errorf("due = %v, want %v", got.DueAt, bound)
		}
		ext, err := st.GetExtension(context.Background(), gdpr.ID)
		if err != nil || !ext.PreviousDue.Equal(gdprDue) || !ext.Due.Equal(bound) || ext.Reason != "records in three archives" ||
			ext.Actor != lethe.ActorOperator || ext.ActorID != "ana" {
			t.Fatalf("extension = %+v, %v", ext, err)
		}
		evs, err := st.ListAudit(context.Background(), gdpr.ID)
		if err != nil {
			t.Fatal(err)
		}
		var extended []lethe.AuditEvent
		for _, e := range evs {
			if e.Type == lethe.EventRequestExtended {
				extended = append(extended, e)
			}
		}
		if len(extended) != 1 || extended[0].Actor != lethe.ActorOperator || extended[0].ActorID != "ana" ||
			extended[0].Details["due_at"] != bound.Format(time.RFC3339) || extended[0].Details["previous_due_at"] != gdprDue.Format(time.RFC3339) {
			t.Fatalf("request.extended events = %+v", extended)
		}
		// Twice: refused, nothing changed.
		if _, err := p.Extend(ana, store.ExtendParams{RequestID: gdpr.ID, Scope: store.Scope{All: true}, Reason: "again", Days: 1}); lethe.ErrorCode(err) != lethe.ECONFLICT {
			t.Errorf("second extension: %v, want conflict", err)
		}
		if cur := mustGet(t, st, gdpr.ID); !cur.DueAt.Equal(bound) {
			t.Errorf("due after a refused second extension = %v", cur.DueAt)
		}

		// CCPA: 45 more days, not 46.
		if _, err := p.Extend(ana, store.ExtendParams{RequestID: ccpa.ID, Scope: store.Scope{All: true}, Reason: "r", Days: 46}); lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("CCPA 46 days: %v", err)
		}
		unchanged(ccpa)
		if got, err := p.Extend(ana, store.ExtendParams{RequestID: ccpa.ID, Scope: store.Scope{All: true}, Reason: "r", Days: 45}); err != nil ||
			!got.DueAt.Equal(ccpa.DueAt.UTC().Add(45*24*time.Hour)) {
			t.Errorf("CCPA 45 days: %v, %v", got, err)
		}

		// A closed request is not extended.
		closed := openRequest(t, st, client, lethe.GDPR, received, "")
		if ok, err := st.UpdateRequestState(context.Background(), store.UpdateRequestStateParams{ID: closed.ID, To: lethe.StatusCanceled, ToStage: lethe.StageDone, At: received}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if _, err := p.Extend(ana, store.ExtendParams{RequestID: closed.ID, Scope: store.Scope{All: true}, Reason: "r", Days: 1}); lethe.ErrorCode(err) != lethe.ECONFLICT {
			t.Errorf("extending a canceled request: %v", err)
		}
		unchanged(closed)

		// The partner hears of it through the status events, signed
		// with its secret, once the pipeline delivers.
		startBuilt(t, p)
		es := waitCallbacks(t, st, gdpr.ID, 1)
		if es[0].State != store.CallbackDelivered {
			t.Fatalf("extension event = %+v", es[0])
		}
		ds := rcv.deliveries()
		if len(ds) != 1 || !verifySignature(ds[0].sig, ds[0].body, clientSecret) {
			t.Fatalf("deliveries = %d (signature checked on the first)", len(ds))
		}
		var body struct {
			Type      string       `json:"type"`
			RequestID string       `json:"request_id"`
			Status    lethe.Status `json:"status"`
			DueAt     string       `json:"due_at"`
			Extension struct {
				PreviousDueAt string `json:"previous_due_at"`
				DueAt         string `json:"due_at"`
				Reason        string `json:"reason"`
			} `json:"extension"`
		}
		if err := json.Unmarshal(ds[0].body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Type != CallbackExtendedType || body.RequestID != gdpr.ID || body.Status != lethe.StatusReceived ||
			body.DueAt != rfc3339(bound) || body.Extension.DueAt != rfc3339(bound) ||
			body.Extension.PreviousDueAt != rfc3339(gdprDue) || body.Extension.Reason != "records in three archives" {
			t.Errorf("extension event body = %s", ds[0].body)
		}
		assertNoValue(t, "extension event", string(ds[0].body), email)
	})
}

func mustGet(t *testing.T, st store.Store, id string) *lethe.Request {
	t.Helper()
	r, err := st.GetRequest(context.Background(), id, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
