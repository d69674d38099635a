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
		// The key is stored as a keyed hash: the column read back is not
		// the key, and the plain key finds nothing.
		stored, err := st.GetRequest(ctx, r.ID, store.Scope{All: true})
		if err != nil || stored.IdempotencyKey == "" || strings.Contains(stored.IdempotencyKey, "k1") {
			t.Errorf("stored idempotency key %q (%v), want a keyed hash of k1", stored.IdempotencyKey, err)
		}
		if _, err := st.FindRequestByIdempotencyKey(ctx, "partner", "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the plain key found a request (%v): it is stored readable", err)
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

// TestSubmitRefusesIdentitiesInReferences: external_id, Idempotency-Key and
// callback_url outlive minimisation in some form, so an identity in any of
// them is refused, in any encoding, and the error never quotes the value.
func TestSubmitRefusesIdentitiesInReferences(t *testing.T) {
	t.Parallel()
	st := testdb.OpenStore(t, "sqlite")
	svc, q := newService(t, st, intake.Config{})
	alice := lethe.Identity{Type: lethe.IdentityEmail, Value: "alice+tag@example.com"}
	phone := lethe.Identity{Type: lethe.IdentityPhone, Value: "+447700900123"}
	user := lethe.Identity{Type: lethe.IdentityUserID, Value: "u-8841"}
	ids := []lethe.Identity{alice, phone, user}
	for name, sub := range map[string]intake.Submission{
		"external email":         {ExternalID: "alice+tag@example.com"},
		"external upper":         {ExternalID: "ref-ALICE+TAG@EXAMPLE.COM"},
		"external user id":       {ExternalID: "ticket:u-8841"},
		"external phone":         {ExternalID: "call 07700 900123"},
		"external other email":   {ExternalID: "bob@example.org"},
		"idempotency email":      {IdempotencyKey: "alice%2Btag%40example.com"},
		"idempotency phone":      {IdempotencyKey: "+44-7700-900-123"},
		"idempotency user id":    {IdempotencyKey: "u-8841"},
		"callback query email":   {CallbackURL: "https://x.example/cb?email=alice%2Btag%40example.com"},
		"callback double enc":    {CallbackURL: "https://x.example/cb?e=bob%2540example.org"},
		"callback path phone":    {CallbackURL: "https://x.example/cb/447700900123"},
		"callback encoded phone": {CallbackURL: "https://x.example/cb?tel=%2B44%207700%20900123"},
		"callback user id":       {CallbackURL: "https://x.example/cb?user=u-8841"},
		"callback past the cut":  {CallbackURL: "https://x.example/cb?pad=" + strings.Repeat("x", 1500) + "&e=u-8841"},
	} {
		sub.Actor, sub.Identities = lethe.ActorAdmin, ids
		_, _, err := svc.Submit(context.Background(), sub)
		if !isCode(err, lethe.EINVALID) {
			t.Errorf("%s: %v, want EINVALID", name, err)
			continue
		}
		for _, form := range []string{"alice", "ALICE", "7700", "u-8841", "bob", "example"} {
			if strings.Contains(err.Error(), form) {
				t.Errorf("%s: error %q quotes the value", name, err)
			}
		}
	}
	rs, _, err := st.ListRequests(context.Background(), store.ListFilter{Scope: store.Scope{All: true}, Limit: 10})
	if err != nil || len(rs) != 0 || len(q.ids) != 0 {
		t.Errorf("refused input stored %d requests, queued %d jobs (%v)", len(rs), len(q.ids), err)
	}
	// References that only look like numbers are everyday order numbers
	// and UUIDs: accepted.
	r, out, err := svc.Submit(context.Background(), intake.Submission{
		Actor: lethe.ActorAdmin, Identities: ids, ExternalID: "ORD-2026-11-28-00012345",
		IdempotencyKey: "550e8400-e29b-41d4-a716-446655440000",
	})
	if err != nil || out != intake.Created || r.ExternalID != "ORD-2026-11-28-00012345" {
		t.Fatalf("plain references: %v, %v", out, err)
	}
	// The phone's digits spread over unrelated numbers (a port, path
	// segments) are not the phone.
	scattered := intake.Submission{Actor: lethe.ActorAdmin, Identities: []lethe.Identity{phone}, CallbackURL: "https://x.example:7700/cb/900/123?n=1234567890"}
	if _, err := svc.Check(scattered); err != nil {
		t.Errorf("scattered digits: %v, want accepted", err)
	}
}
