package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
)

const (
	viewerTok   = "viewer-token"
	reviewerTok = "reviewer-token"
)

// actionEnv is a server whose actions are a real (insert-only) pipeline
// on the test's database, with a viewer and a reviewer operator.
func actionEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, func(o *Options) {
		st := o.Store
		if err := pipeline.Migrate(context.Background(), st); err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(pipeline.Config{InsertOnly: true}, st, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Actions = p
		o.Auth = append(o.Auth, tokenAuth{
			viewerTok:   {Admin: true, Operator: operators.Principal{Name: "vera", Role: operators.RoleViewer}},
			reviewerTok: {Admin: true, Operator: operators.Principal{Name: "rita", Role: operators.RoleReviewer}},
		})
	})
}

// heldRequest stores a request held for approval, as resolve leaves one.
func heldRequest(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR, Status: lethe.StatusHeld, Stage: lethe.StageResolve,
		Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "ada@example.com"}}, SubjectKey: uuid.NewString(),
		ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now}
	err := e.store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		_, err := tx.PlaceHold(ctx, store.Hold{RequestID: r.ID, Reason: lethe.HoldApprovalRequired, PlacedAt: now})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func auditLen(t *testing.T, e *env, id string) int {
	t.Helper()
	es, err := e.store.ListAudit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestActionsNeedAReviewer: a viewer, a partner's client token and no
// token cannot act (403/401, nothing changed); a reviewer can, under its
// name; bad input is a clear 4xx in the native shape, nothing changed.
func TestActionsNeedAReviewer(t *testing.T) {
	t.Parallel()
	e := actionEnv(t)
	id := heldRequest(t, e)
	path := "/v1/deletion-requests/" + id

	for _, c := range []struct {
		token, code string
		status      int
	}{
		{viewerTok, lethe.EFORBIDDEN, 403},
		{clientATok, lethe.EFORBIDDEN, 403},
		{"", lethe.EUNAUTH, 401},
	} {
		res := e.do(t, call{method: "POST", path: path + "/approve", token: c.token})
		if res.status != c.status || res.errorCode(t) != c.code {
			t.Errorf("approve with %q = %d %s, want %d %s", c.token, res.status, res.body, c.status, c.code)
		}
	}
	res := e.do(t, call{method: "POST", path: "/v1/tasks/retry", token: viewerTok, body: `{"target":"shop","failed":true}`})
	if res.status != 403 {
		t.Errorf("viewer bulk retry = %d, want 403", res.status)
	}
	r, err := e.store.GetRequest(context.Background(), id, store.Scope{All: true})
	if err != nil || r.Status != lethe.StatusHeld || auditLen(t, e, id) != 0 {
		t.Fatalf("refused approvals changed the request: %+v, %v", r, err)
	}

	for _, c := range []struct {
		name, path, body, code string
	}{
		{"deny with an unknown code", "/deny", `{"reason":"dunno"}`, lethe.EINVALID},
		{"deny with a note naming the subject", "/deny", `{"reason":"other","note":"it is ada@example.com"}`, lethe.EINVALID},
		{"an unknown field", "/approve", `{"reson":"x"}`, lethe.EINVALID},
		{"skip without a reason", "/tasks/shop/skip", `{}`, lethe.EINVALID},
		{"a legal hold without a reason", "/hold", ``, lethe.EINVALID},
		{"retry of a held request", "/retry", ``, lethe.ECONFLICT},
		{"a task of no target", "/tasks/NOPE!/retry", ``, lethe.ENOTFOUND},
	} {
		res := e.do(t, call{method: "POST", path: path + c.path, token: reviewerTok, body: c.body})
		if got := res.errorCode(t); got != c.code {
			t.Errorf("%s: %d %s, want %s", c.name, res.status, res.body, c.code)
		}
		if strings.Contains(string(res.body), "ada@") {
			t.Errorf("%s: the answer echoes the identity: %s", c.name, res.body)
		}
	}
	if n := auditLen(t, e, id); n != 0 {
		t.Fatalf("refused actions recorded %d events", n)
	}

	res = e.do(t, call{method: "POST", path: path + "/approve", token: reviewerTok, body: `{"note":"checked the ticket"}`})
	var v view
	res.decode(t, &v)
	if res.status != 200 || v.Status != string(lethe.StatusReceived) {
		t.Fatalf("reviewer approve = %d %s", res.status, res.body)
	}
	es, err := e.store.ListAudit(context.Background(), id)
	if err != nil || len(es) != 1 || es[0].Type != lethe.EventRequestApproved || es[0].ActorID != "rita" || es[0].Actor != lethe.ActorOperator {
		t.Errorf("audit after approve = %+v, %v", es, err)
	}
	res = e.do(t, call{method: "POST", path: path + "/approve", token: reviewerTok})
	if res.status != 409 || res.errorCode(t) != lethe.ECONFLICT {
		t.Errorf("approving again = %d %s, want 409", res.status, res.body)
	}

	res = e.do(t, call{method: "GET", path: path + "/holds", token: viewerTok})
	var holds struct {
		Data []struct {
			Reason  string `json:"reason"`
			EndedAs string `json:"ended_as"`
			EndedBy string `json:"ended_by"`
		} `json:"data"`
	}
	res.decode(t, &holds)
	if res.status != 200 || len(holds.Data) != 1 || holds.Data[0].EndedAs != "approved" || holds.Data[0].EndedBy != "rita" {
		t.Errorf("holds = %d %s", res.status, res.body)
	}
}
