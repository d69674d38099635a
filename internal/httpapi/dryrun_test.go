package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
)

// fakePlanner records what it was asked and answers a fixed plan.
type fakePlanner struct {
	mu   sync.Mutex
	got  [][]lethe.Identity
	err  error
	plan PlanResult
}

func (f *fakePlanner) Plan(_ context.Context, ids []lethe.Identity) (*PlanResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, ids)
	if f.err != nil {
		return nil, f.err
	}
	p := f.plan
	return &p, nil
}

func (f *fakePlanner) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

func newPlanEnv(t *testing.T) (*env, *fakePlanner) {
	t.Helper()
	until := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	fp := &fakePlanner{plan: PlanResult{LinkedIdentities: 2, Targets: []TargetPlan{
		{Target: "shop", Report: lethe.Report{Items: []lethe.ReportItem{
			{Object: "users", Action: lethe.ActionDelete, Rows: 1},
			{Object: "invoices", Action: lethe.ActionRetain, Rows: 3, Reason: "tax law", Until: until},
		}}},
		{Target: "empty"},
	}}}
	return newEnv(t, func(o *Options) { o.Plan = fp.Plan }), fp
}

const dryRunPath = "/v1/deletion-requests?dry_run=true"

// TestDryRun: the plan comes back per target, the planner is given the
// normalised identities, and nothing is stored.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e, fp := newPlanEnv(t)
	res := e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, header: map[string]string{"Idempotency-Key": "k1"},
		body: `{"identities":[{"type":"email","value":" Ada@Example.COM "},{"type":"phone","value":"+44 7400 123456"},{"type":"email","value":"ada@example.com"}],"regulation":"ccpa"}`})
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	want := `{"dry_run":true,"linked_identities":2,"targets":[` +
		`{"target":"shop","items":[{"object":"users","action":"delete","rows":1},{"object":"invoices","action":"retain","rows":3,"reason":"tax law","until":"2036-01-01T00:00:00Z"}]},` +
		`{"target":"empty","items":[]}]}` + "\n"
	if diff := cmp.Diff(want, string(res.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if res.header.Get("Location") != "" {
		t.Errorf("a dry run has a Location: %s", res.header.Get("Location"))
	}
	wantIDs := [][]lethe.Identity{{{Type: lethe.IdentityEmail, Value: "ada@example.com"}, {Type: lethe.IdentityPhone, Value: "+447400123456"}}}
	if diff := cmp.Diff(wantIDs, fp.got); diff != "" {
		t.Errorf("planner was given (-want +got):\n%s", diff)
	}
	if n := e.countRequests(t); n != 0 {
		t.Errorf("%d requests stored by a dry run", n)
	}
	// The key was not kept: a real submission with it creates a request.
	if r := e.create(t, adminTok, "ada@example.com", map[string]string{"Idempotency-Key": "k1"}); r.status != http.StatusAccepted {
		t.Errorf("real submission after a dry run with the same key: %d %s", r.status, r.body)
	}
	// A dry run beside an open request for the subject still plans.
	if r := e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, body: validBody}); r.status != http.StatusOK {
		t.Errorf("dry run with an open request: %d", r.status)
	}
	if n := e.countRequests(t); n != 1 {
		t.Errorf("%d requests stored, want the 1 real one", n)
	}
}

// TestDryRunBadInputSameAsCreate: every invalid body is refused by a dry
// run with the status and code a real submission gets, and the planner is
// never called.
func TestDryRunBadInputSameAsCreate(t *testing.T) {
	t.Parallel()
	e, fp := newPlanEnv(t)
	bodies := []string{
		`{"identities":`,
		`{"identities":"a@example.com"}`,
		`{"identities":[{"type":"email","value":"a@example.com"}],"callbak_url":"https://x.example"}`,
		`{"identities":[{"type":"passport","value":"X123"}]}`,
		`{"identities":[]}`,
		`{}`,
		`{"identities":[{"type":"email","value":"not-an-email"}]}`,
		`{"identities":[{"type":"phone","value":"12345"}]}`,
		`{"identities":[{"type":"email","value":"a@example.com"}],"regulation":"lgpd"}`,
		`{"identities":[{"type":"email","value":"a@example.com"}],"callback_url":"ftp://x"}`,
		`{"identities":[{"type":"email","value":"a@example.com"}],"external_id":"a\u0001b"}`,
		`{"identities":[{"type":"email","value":"a@example.com"}],"external_id":"` + strings.Repeat("x", 70<<10) + `"}`,
		validBody + `{}`,
	}
	for i, b := range bodies {
		real := e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: adminTok, body: b})
		dry := e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, body: b})
		if real.status < 400 || real.status >= 500 {
			t.Fatalf("body %d: real submission answered %d", i, real.status)
		}
		if dry.status != real.status || dry.errorCode(t) != real.errorCode(t) {
			t.Errorf("body %d: dry run %d %s, real %d %s", i, dry.status, dry.body, real.status, real.body)
		}
	}
	wrongType := e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, body: validBody, contentType: "text/plain"})
	if wrongType.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain dry run: %d", wrongType.status)
	}
	if n := fp.calls(); n != 0 {
		t.Errorf("planner called %d times for invalid input", n)
	}
	if n := e.countRequests(t); n != 0 {
		t.Errorf("%d requests stored", n)
	}
}

// TestDryRunRefusals: who may dry-run and how it must be asked.
func TestDryRunRefusals(t *testing.T) {
	t.Parallel()
	e, fp := newPlanEnv(t)
	unwired := newEnv(t)
	tests := []struct {
		name   string
		e      *env
		path   string
		token  string
		status int
		code   string
	}{
		{"client", e, dryRunPath, clientATok, 403, lethe.EFORBIDDEN},
		{"no token", e, dryRunPath, "", 401, lethe.EUNAUTH},
		{"not a boolean", e, "/v1/deletion-requests?dry_run=maybe", adminTok, 400, lethe.EINVALID},
		{"empty", e, "/v1/deletion-requests?dry_run=", adminTok, 400, lethe.EINVALID},
		{"twice", e, "/v1/deletion-requests?dry_run=true&dry_run=true", adminTok, 400, lethe.EINVALID},
		{"misspelt", e, "/v1/deletion-requests?dryRun=true", adminTok, 400, lethe.EINVALID},
		{"dashed", e, "/v1/deletion-requests?dry-run=1", adminTok, 400, lethe.EINVALID},
		{"mangled", e, "/v1/deletion-requests?dry_run=%zz", adminTok, 400, lethe.EINVALID},
		{"no planner", unwired, dryRunPath, adminTok, 400, lethe.EINVALID},
	}
	for _, tt := range tests {
		res := tt.e.do(t, call{method: "POST", path: tt.path, token: tt.token, body: validBody})
		if res.status != tt.status || res.errorCode(t) != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, res.status, res.body, tt.status, tt.code)
		}
		if n := tt.e.countRequests(t); n != 0 {
			t.Fatalf("%s: %d requests stored", tt.name, n)
		}
	}
	if n := fp.calls(); n != 0 {
		t.Errorf("planner called %d times", n)
	}
	// dry_run=false is an ordinary submission.
	if res := e.do(t, call{method: "POST", path: "/v1/deletion-requests?dry_run=false", token: clientATok, body: validBody}); res.status != http.StatusAccepted {
		t.Errorf("dry_run=false: %d %s", res.status, res.body)
	}
}

// TestDryRunPlannerErrors: a target that cannot be reached is a 503 with
// the planner's safe message; anything else is a 500 that shows nothing.
func TestDryRunPlannerErrors(t *testing.T) {
	t.Parallel()
	e, fp := newPlanEnv(t)
	fp.mu.Lock()
	fp.err = fmt.Errorf("%w: dial tcp 10.0.0.9:5432: refused", lethe.Errorf(lethe.EUNAVAILABLE, `target "shop" could not be planned`))
	fp.mu.Unlock()
	res := e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, body: validBody})
	if res.status != http.StatusServiceUnavailable || res.errorCode(t) != lethe.EUNAVAILABLE || strings.Contains(string(res.body), "10.0.0.9") {
		t.Errorf("unavailable: %d %s", res.status, res.body)
	}
	fp.mu.Lock()
	fp.err = errors.New("boom at 10.0.0.9")
	fp.mu.Unlock()
	res = e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, body: validBody})
	if res.status != http.StatusInternalServerError || strings.Contains(string(res.body), "10.0.0.9") {
		t.Errorf("internal: %d %s", res.status, res.body)
	}
	if strings.Contains(e.logs.String(), "a@example.com") {
		t.Errorf("log holds an identity: %s", e.logs.String())
	}
}

// TestDryRunSaysWhyItWouldStop: a plan that would stop answers the reason
// and the accounts reached, with no targets.
func TestDryRunSaysWhyItWouldStop(t *testing.T) {
	t.Parallel()
	fp := &fakePlanner{plan: PlanResult{
		Reach: &lethe.Reach{Accounts: map[string]int{"shop/users": 2}, Unfollowed: []string{"shop/users.phone"}},
		Stop:  lethe.OutcomeAmbiguousSubject,
	}}
	e := newEnv(t, func(o *Options) { o.Plan = fp.Plan })
	res := e.do(t, call{method: "POST", path: dryRunPath, token: adminTok, body: validBody})
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	want := `{"dry_run":true,"linked_identities":0,"reach":{"accounts":{"shop/users":2},"unfollowed":["shop/users.phone"]},` +
		`"would_stop":"ambiguous_subject","targets":[]}` + "\n"
	if diff := cmp.Diff(want, string(res.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}
