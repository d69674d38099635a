package intake_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// queue records the resolve jobs intake asks for.
type queue struct {
	mu  sync.Mutex
	ids []string
}

func (q *queue) EnqueueResolve(_ context.Context, _ store.Tx, requestID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, requestID)
	return nil
}

// terminator records the ends intake asks for and ends them the default
// way.
type terminator struct {
	endings []terminate.Ending
}

func (r *terminator) Terminate(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task, e terminate.Ending) (bool, error) {
	r.endings = append(r.endings, e)
	return terminate.Path{}.Terminate(ctx, tx, req, tasks, e)
}

var ada = lethe.Identity{Type: lethe.IdentityEmail, Value: "Ada@Example.com"}

func newService(t *testing.T, st store.Store, cfg intake.Config) (*intake.Service, *queue) {
	t.Helper()
	q := &queue{}
	return intake.New(st, q, testdb.Keyring(t), cfg), q
}

func TestSubmitStoresOnceAndAnswersRepeats(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		svc, q := newService(t, st, intake.Config{})
		sub := intake.Submission{Actor: lethe.ActorClient, ClientID: "partner", Identities: []lethe.Identity{ada, ada}, IdempotencyKey: "k1"}
		r, out, err := svc.Submit(ctx, sub)
		if err != nil || out != intake.Created {
			t.Fatalf("Submit = %v, %v", out, err)
		}
		if len(r.Identities) != 1 || r.Identities[0].Value != "ada@example.com" || r.Regulation != lethe.GDPR {
			t.Errorf("request: identities %v, regulation %s; want one normalised email under GDPR", r.Identities, r.Regulation)
		}
		if !r.DueAt.Equal(r.ReceivedAt.Add(lethe.DefaultDeadlines[lethe.GDPR])) {
			t.Errorf("due %s, received %s", r.DueAt, r.ReceivedAt)
		}
		es, err := st.ListAudit(ctx, r.ID)
		if err != nil || len(es) != 1 || es[0].Type != lethe.EventRequestReceived || es[0].Actor != lethe.ActorClient || es[0].ActorID != "partner" {
			t.Fatalf("audit after submit: %+v, %v", es, err)
		}
		if strings.Contains(es[0].Details["identities"], "ada") {
			t.Error("the received event holds the identity's value")
		}

		// Same key: the first answer. Same subject, new key: the open request.
		again, out, err := svc.Submit(ctx, sub)
		if err != nil || out != intake.Replayed || again.ID != r.ID {
			t.Errorf("replay = %v, %v, %v", out, again, err)
		}
		sub.IdempotencyKey = "k2"
		dup, out, err := svc.Submit(ctx, sub)
		if err != nil || out != intake.Duplicate || dup.ID != r.ID {
			t.Errorf("duplicate = %v, %v, %v", out, dup, err)
		}
		// Same key, different request: a conflict.
		_, _, err = svc.Submit(ctx, intake.Submission{Actor: lethe.ActorClient, ClientID: "partner", IdempotencyKey: "k1",
			Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "grace@example.com"}}})
		if !isCode(err, lethe.ECONFLICT) {
			t.Errorf("reused key: %v, want ECONFLICT", err)
		}
		if len(q.ids) != 1 || q.ids[0] != r.ID {
			t.Errorf("resolve jobs: %v, want one for %s", q.ids, r.ID)
		}
	})
}

func TestSubmitRefusesBadInputAndStoresNothing(t *testing.T) {
	t.Parallel()
	st := testdb.OpenStore(t, "sqlite")
	svc, q := newService(t, st, intake.Config{})
	for name, sub := range map[string]intake.Submission{
		"no identities":    {Actor: lethe.ActorAdmin},
		"bad identity":     {Actor: lethe.ActorAdmin, Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "nope"}}},
		"regulation":       {Actor: lethe.ActorAdmin, Identities: []lethe.Identity{ada}, Regulation: "XYZ"},
		"external id":      {Actor: lethe.ActorAdmin, Identities: []lethe.Identity{ada}, ExternalID: "a\nb"},
		"callback url":     {Actor: lethe.ActorAdmin, Identities: []lethe.Identity{ada}, CallbackURL: "ftp://x.example"},
		"callback creds":   {Actor: lethe.ActorAdmin, Identities: []lethe.Identity{ada}, CallbackURL: "https://u:p@x.example"},
		"idempotency long": {Actor: lethe.ActorAdmin, Identities: []lethe.Identity{ada}, IdempotencyKey: strings.Repeat("k", intake.MaxIdempotencyLen+1)},
	} {
		if _, _, err := svc.Submit(context.Background(), sub); !isCode(err, lethe.EINVALID) {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
		// Check answers exactly as Submit does.
		if _, err := svc.Check(sub); !isCode(err, lethe.EINVALID) {
			t.Errorf("Check %s: %v, want EINVALID", name, err)
		}
	}
	rs, _, err := st.ListRequests(context.Background(), store.ListFilter{Scope: store.Scope{All: true}, Limit: 10})
	if err != nil || len(rs) != 0 || len(q.ids) != 0 {
		t.Errorf("bad input stored %d requests, queued %d jobs (%v)", len(rs), len(q.ids), err)
	}
}

func TestCancelEndsThroughTheTerminator(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		term := &terminator{}
		svc, _ := newService(t, st, intake.Config{Terminator: term})
		r, _, err := svc.Submit(ctx, intake.Submission{Actor: lethe.ActorClient, ClientID: "partner", Identities: []lethe.Identity{ada}})
		if err != nil {
			t.Fatal(err)
		}

		// Another client, and the zero scope, do not see it.
		for _, scope := range []store.Scope{{ClientID: "other"}, {}} {
			if _, err := svc.Cancel(ctx, scope, r.ID, lethe.ActorClient, "other"); !isCode(err, lethe.ENOTFOUND) {
				t.Errorf("cancel in scope %+v: %v, want ENOTFOUND", scope, err)
			}
		}
		got, err := svc.Cancel(ctx, store.Scope{ClientID: "partner"}, r.ID, lethe.ActorClient, "partner")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != lethe.StatusCanceled || got.Stage != lethe.StageDone || got.CompletedAt.IsZero() {
			t.Errorf("canceled request: %+v", got)
		}
		if len(term.endings) != 1 || term.endings[0].To != lethe.StatusCanceled || term.endings[0].Actor != lethe.ActorClient ||
			term.endings[0].ActorID != "partner" || term.endings[0].Details["from"] != "received" {
			t.Errorf("endings: %+v", term.endings)
		}
		if ids, err := st.RequestIdentities(ctx, r.ID); err != nil || len(ids) != 0 {
			t.Errorf("identity values after cancel: %v, %v", ids, err)
		}
		// Once ended, a second cancel is a conflict and ends nothing.
		if _, err := svc.Cancel(ctx, store.Scope{All: true}, r.ID, lethe.ActorAdmin, ""); !isCode(err, lethe.ECONFLICT) {
			t.Errorf("second cancel: %v, want ECONFLICT", err)
		}
		if len(term.endings) != 1 {
			t.Errorf("a refused cancel reached the terminator: %+v", term.endings)
		}
	})
}

func TestCancelRefusesARunningRequest(t *testing.T) {
	t.Parallel()
	st := testdb.OpenStore(t, "sqlite")
	ctx := context.Background()
	svc, _ := newService(t, st, intake.Config{})
	r, _, err := svc.Submit(ctx, intake.Submission{Actor: lethe.ActorAdmin, Identities: []lethe.Identity{ada}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusRunning, ToStage: lethe.StageErase, At: time.Now()}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := svc.Cancel(ctx, store.Scope{All: true}, r.ID, lethe.ActorAdmin, ""); !isCode(err, lethe.ECONFLICT) {
		t.Fatalf("cancel of a running request: %v, want ECONFLICT", err)
	}
	if ids, err := st.RequestIdentities(ctx, r.ID); err != nil || len(ids) != 1 {
		t.Errorf("a refused cancel dropped identities: %v, %v", ids, err)
	}
}

func isCode(err error, code string) bool {
	var le *lethe.Error
	return errors.As(err, &le) && le.Code == code
}
