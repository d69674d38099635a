package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func TestGetShowsCallbacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	res := e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: clientATok,
		body: `{"identities":[{"type":"email","value":"cb@example.com"}],"callback_url":"https://hooks.example/lethe"}`})
	if res.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	id := res.view(t).ID

	ev := &store.CallbackEvent{ID: uuid.Must(uuid.NewV7()).String(), RequestID: id, Seq: 1, Status: lethe.StatusRunning,
		ClientID: "client-a", URL: "https://hooks.example/lethe", Body: []byte(`{}`), CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := e.store.CreateCallbackEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.CallbackAttempt{
		{Time: ev.CreatedAt, Duration: 10 * time.Second, Error: "timeout"},
		{Time: ev.CreatedAt.Add(time.Minute), Duration: 25 * time.Millisecond, HTTPStatus: 500, Error: "http_status"},
		{Time: ev.CreatedAt.Add(time.Hour), Duration: 3 * time.Millisecond, HTTPStatus: 204},
	} {
		if _, err := e.store.RecordCallbackAttempt(ctx, ev.ID, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.EndCallbackEvent(ctx, ev.ID, store.CallbackDelivered, ev.CreatedAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	res = e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + id, token: clientATok})
	var got struct {
		Callbacks []map[string]any `json:"callbacks"`
	}
	res.decode(t, &got)
	want := []map[string]any{{
		"id": ev.ID, "sequence": 1.0, "status": "running", "state": "delivered",
		"created_at": "2025-01-01T00:00:00Z", "ended_at": "2025-01-01T01:00:00Z",
		"attempts": []any{
			map[string]any{"attempt": 1.0, "time": "2025-01-01T00:00:00Z", "error": "delivery_failed"}, // never the network-level reason or timing
			map[string]any{"attempt": 2.0, "time": "2025-01-01T00:01:00Z", "http_status": 500.0, "error": "http_status", "duration_ms": 25.0},
			map[string]any{"attempt": 3.0, "time": "2025-01-01T01:00:00Z", "http_status": 204.0, "duration_ms": 3.0},
		},
	}}
	if diff := cmp.Diff(want, got.Callbacks); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}
	// The URL is the client's own; the view does not repeat it.
	if strings.Contains(string(res.body), "hooks.example") {
		t.Errorf("view shows the callback URL: %s", res.body)
	}

	// A reminder to a manual target's owner is the company's own
	// traffic: operators see it, the client does not.
	rem := &store.CallbackEvent{ID: uuid.Must(uuid.NewV7()).String(), RequestID: id, Seq: -1, Status: lethe.StatusRunning,
		URL: "https://owner.example/remind", Body: []byte(`{"type":"manual_task.reminder"}`), Format: store.CallbackFormatReminder, CreatedAt: ev.CreatedAt}
	if err := e.store.CreateCallbackEvent(ctx, rem); err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string][]string{clientATok: {ev.ID}, adminTok: {rem.ID, ev.ID}} {
		res := e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + id, token: tok})
		var got struct {
			Callbacks []struct {
				ID string `json:"id"`
			} `json:"callbacks"`
		}
		res.decode(t, &got)
		var ids []string
		for _, c := range got.Callbacks {
			ids = append(ids, c.ID)
		}
		if !cmp.Equal(ids, want) {
			t.Errorf("callbacks seen with %s: %v, want %v", tok, ids, want)
		}
	}

	// A request without callbacks shows an empty list, not null.
	res = e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: clientATok,
		body: `{"identities":[{"type":"email","value":"plain@example.com"}]}`})
	res = e.do(t, call{method: "GET", path: "/v1/deletion-requests/" + res.view(t).ID, token: clientATok})
	if !strings.Contains(string(res.body), `"callbacks":[]`) {
		t.Errorf("no callbacks: %s", res.body)
	}
}

// suppressedRequest stores a request of clientID for ids and puts its
// identities on the suppression list, as the pipeline does on completion.
func suppressedRequest(t *testing.T, e *env, clientID string, ids ...lethe.Identity) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{ID: uuid.Must(uuid.NewV7()).String(), ClientID: clientID, Regulation: lethe.GDPR,
		Status: lethe.StatusCompleted, Stage: lethe.StageDone, Identities: ids, SubjectKey: uuid.NewString(),
		ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now}
	if err := e.store.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SuppressRequestIdentities(ctx, r.ID, now); err != nil {
		t.Fatal(err)
	}
}

type checkResults struct {
	Results []struct {
		Index      int  `json:"index"`
		Suppressed bool `json:"suppressed"`
	} `json:"results"`
}

func (c checkResults) flags() []bool {
	out := make([]bool, len(c.Results))
	for i, r := range c.Results {
		if r.Index != i {
			return nil
		}
		out[i] = r.Suppressed
	}
	return out
}

func TestSuppressionCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.Suppression = true })
	suppressedRequest(t, e, "client-a", lethe.Identity{Type: lethe.IdentityEmail, Value: "gone@example.com"})
	suppressedRequest(t, e, "", lethe.Identity{Type: lethe.IdentityPhone, Value: "+4915112345678"})

	// Written differently from how they were stored: normalised as at intake.
	body := `{"identities":[{"type":"email","value":"  GONE@Example.com"},{"type":"phone","value":"+49 151 1234 5678"},{"type":"email","value":"here@example.com"}]}`
	for _, tc := range []struct {
		token string
		want  []bool
	}{
		{adminTok, []bool{true, true, false}},
		{clientATok, []bool{true, false, false}},
		{clientBTok, []bool{false, false, false}},
	} {
		res := e.do(t, call{method: "POST", path: "/v1/suppressions/check", token: tc.token, body: body})
		if res.status != http.StatusOK {
			t.Fatalf("check: %d %s", res.status, res.body)
		}
		var got checkResults
		res.decode(t, &got)
		if diff := cmp.Diff(tc.want, got.flags()); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tc.token, diff)
		}
		if strings.Contains(strings.ToLower(string(res.body)), "gone") || strings.Contains(string(res.body), "4915") {
			t.Errorf("answer echoes a value: %s", res.body)
		}
	}

	for _, tc := range []struct {
		body, code string
	}{
		{`{"identities":[]}`, lethe.EINVALID},
		{`{"identities":[{"type":"email","value":"not an email"}]}`, lethe.EINVALID},
		{`{"identities":[{"type":"email","value":"a@example.com"}],"extra":1}`, lethe.EINVALID},
	} {
		res := e.do(t, call{method: "POST", path: "/v1/suppressions/check", token: adminTok, body: tc.body})
		if code := res.errorCode(t); code != tc.code {
			t.Errorf("%s: code %s, want %s", tc.body, code, tc.code)
		}
	}
	if res := e.do(t, call{method: "POST", path: "/v1/suppressions/check", body: body}); res.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d", res.status)
	}

	disabled := newEnv(t)
	res := disabled.do(t, call{method: "POST", path: "/v1/suppressions/check", token: adminTok, body: body})
	if res.status != http.StatusConflict {
		t.Errorf("check while disabled: %d %s", res.status, res.body)
	}
}

func TestSuppressionRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, func(o *Options) { o.Suppression = true })
	gone := lethe.Identity{Type: lethe.IdentityEmail, Value: "gone@example.com"}
	suppressedRequest(t, e, "client-a", gone)
	suppressedRequest(t, e, "client-b", gone)
	body := `{"identity":{"type":"email","value":"Gone@example.com"}}`

	res := e.do(t, call{method: "DELETE", path: "/v1/suppressions", token: clientATok, body: body})
	if res.status != http.StatusForbidden {
		t.Fatalf("client removal: %d %s", res.status, res.body)
	}
	res = e.do(t, call{method: "DELETE", path: "/v1/suppressions", token: adminTok, body: body})
	if res.status != http.StatusOK || strings.TrimSpace(string(res.body)) != `{"removed":2}` {
		t.Fatalf("admin removal: %d %s", res.status, res.body)
	}
	res = e.do(t, call{method: "DELETE", path: "/v1/suppressions", token: adminTok, body: body})
	if strings.TrimSpace(string(res.body)) != `{"removed":0}` {
		t.Fatalf("second removal: %d %s", res.status, res.body)
	}
	if res := e.do(t, call{method: "DELETE", path: "/v1/suppressions", token: adminTok, body: `{}`}); res.errorCode(t) != lethe.EINVALID {
		t.Errorf("removal without identity: %s", res.body)
	}

	got, err := e.store.CheckSuppressions(ctx, store.Scope{All: true}, []lethe.Identity{gone})
	if err != nil || got[0] {
		t.Fatalf("still suppressed after removal: %v %v", got, err)
	}
	// One audit event, for the removal that removed something: the hash
	// and the type, never the value.
	events, err := e.store.ListAudit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var removals []lethe.AuditEvent
	for _, ev := range events {
		if ev.Type == "suppression.removed" {
			removals = append(removals, ev)
		}
	}
	if len(removals) != 1 {
		t.Fatalf("suppression.removed events: %+v", removals)
	}
	ev := removals[0]
	if ev.Actor != lethe.ActorAdmin || ev.Details["identity_type"] != "email" || len(ev.Details["hash"]) != 64 || ev.Details["entries"] != "2" {
		t.Errorf("audit event: %+v", ev)
	}
	for _, v := range ev.Details {
		if strings.Contains(strings.ToLower(v), "gone") {
			t.Errorf("audit event holds the value: %+v", ev.Details)
		}
	}
}
