package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// opEnv is a server on st with the admin token, named operators, two
// clients and the real pipeline as its Extender (built, not started: the
// tests look at rows, not at erasures).
type opEnv struct {
	*env
	st     store.Store
	ops    *operators.Service
	tokens map[string]string // operator name -> token
}

func newOpEnv(t *testing.T, st store.Store, throttle *auth.Throttle) *opEnv {
	t.Helper()
	ctx := context.Background()
	if err := pipeline.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	pipe, err := pipeline.New(pipeline.Config{}, st, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	kr := testdb.Keyring(t)
	svc := operators.NewService(st, kr, nil)
	e := &opEnv{st: st, ops: svc, tokens: map[string]string{}}
	for name, role := range map[string]operators.Role{"vera": operators.RoleViewer, "rex": operators.RoleReviewer, "ada": operators.RoleAdmin} {
		c, err := svc.Create(ctx, name, role)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[name] = c.Token
	}
	logs := &logBuffer{}
	e.env = &env{logs: logs, srv: New(Options{
		Intake: intake.New(st, nopEnqueuer{}, kr, intake.Config{}),
		Store:  st,
		Auth: []auth.Authenticator{
			auth.AdminToken(adminTok),
			auth.OperatorTokens(svc),
			tokenAuth{clientATok: {ClientID: "client-a"}, clientBTok: {ClientID: "client-b"}},
		},
		Throttle: throttle,
		Extend:   pipe,
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
	})}
	return e
}

func TestOperatorRoles(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		e := newOpEnv(t, st, nil)
		ctx := context.Background()
		res := e.create(t, clientATok, "role@example.com", nil)
		if res.status != http.StatusAccepted {
			t.Fatalf("create: %d %s", res.status, res.body)
		}
		id := res.view(t).ID
		path := "/v1/deletion-requests/" + id
		extend := `{"reason":"three archives to search","days":10}`

		// A viewer reads everything and changes nothing.
		for _, c := range []call{
			{method: "GET", path: path},
			{method: "GET", path: "/v1/deletion-requests"},
			{method: "GET", path: "/v1/receipts"},
			{method: "GET", path: "/v1/deletion-requests?format=csv"},
		} {
			c.token = e.tokens["vera"]
			if res := e.do(t, c); res.status != http.StatusOK {
				t.Errorf("viewer %s %s: %d %s", c.method, c.path, res.status, res.body)
			}
		}
		before := mustGetRequest(t, st, id)
		for _, c := range []call{
			{method: "POST", path: path + "/cancel"},
			{method: "POST", path: path + "/extend", body: extend},
			{method: "POST", path: "/v1/deletion-requests", body: `{"identities":[{"type":"email","value":"v@example.com"}]}`},
			{method: "DELETE", path: "/v1/suppressions", body: `{"identity":{"type":"email","value":"v@example.com"}}`},
		} {
			c.token = e.tokens["vera"]
			res := e.do(t, c)
			if res.status != http.StatusForbidden || res.errorCode(t) != lethe.EFORBIDDEN {
				t.Errorf("viewer %s %s: %d %s; want 403 forbidden", c.method, c.path, res.status, res.body)
			}
		}
		// A reviewer may act on requests but not manage the deployment.
		if res := e.do(t, call{method: "DELETE", path: "/v1/suppressions", token: e.tokens["rex"],
			body: `{"identity":{"type":"email","value":"v@example.com"}}`}); res.status != http.StatusForbidden {
			t.Errorf("reviewer removing a suppression: %d %s", res.status, res.body)
		}
		after := mustGetRequest(t, st, id)
		if after.Status != before.Status || !after.DueAt.Equal(before.DueAt) || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("refused calls changed the request: %+v -> %+v", before, after)
		}
		if _, err := st.GetExtension(ctx, id); err == nil {
			t.Error("a viewer's extension was stored")
		}
		rs, _, err := st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 10})
		if err != nil || len(rs) != 1 {
			t.Fatalf("requests after a viewer's create: %d, %v", len(rs), err)
		}

		// Clients may not extend, nor export the register.
		for _, c := range []call{
			{method: "POST", path: path + "/extend", body: extend},
			{method: "GET", path: "/v1/deletion-requests?format=csv"},
		} {
			c.token = clientATok
			if res := e.do(t, c); res.status != http.StatusForbidden || res.errorCode(t) != lethe.EFORBIDDEN {
				t.Errorf("client %s %s: %d %s", c.method, c.path, res.status, res.body)
			}
		}

		// The reviewer extends; the audit log names it.
		res = e.do(t, call{method: "POST", path: path + "/extend", token: e.tokens["rex"], body: extend})
		if res.status != http.StatusOK {
			t.Fatalf("reviewer extend: %d %s", res.status, res.body)
		}
		var got struct {
			DueAt     string `json:"due_at"`
			ClientID  string `json:"client_id"`
			Extension struct {
				PreviousDueAt string `json:"previous_due_at"`
				DueAt         string `json:"due_at"`
				Reason        string `json:"reason"`
				By            string `json:"by"`
			} `json:"extension"`
		}
		res.decode(t, &got)
		wantDue := formatTime(before.DueAt.Add(10 * 24 * time.Hour))
		if got.DueAt != wantDue || got.Extension.DueAt != wantDue || got.Extension.PreviousDueAt != formatTime(before.DueAt) ||
			got.Extension.Reason != "three archives to search" || got.Extension.By != "rex" || got.ClientID != "client-a" {
			t.Errorf("extended view = %s", res.body)
		}
		// Twice, and beyond the bound: refused, nothing changed.
		if res := e.do(t, call{method: "POST", path: path + "/extend", token: e.tokens["rex"], body: extend}); res.status != http.StatusConflict {
			t.Errorf("second extension: %d %s", res.status, res.body)
		}
		for _, body := range []string{`{"days":10}`, `{"reason":"x","days":10,"until":"2030-01-01"}`, `{"reason":"x","until":"someday"}`, `{"reason":"x","days":10,"extra":1}`} {
			if res := e.do(t, call{method: "POST", path: path + "/extend", token: e.tokens["ada"], body: body}); res.status != http.StatusBadRequest && res.status != http.StatusConflict {
				t.Errorf("extend %s: %d %s", body, res.status, res.body)
			}
		}
		if cur := mustGetRequest(t, st, id); formatTime(cur.DueAt) != wantDue {
			t.Errorf("due after refused extensions = %v", cur.DueAt)
		}
		// The partner sees the extension, not who made it.
		res = e.do(t, call{method: "GET", path: path, token: clientATok})
		if res.status != http.StatusOK || !strings.Contains(string(res.body), `"reason":"three archives to search"`) || strings.Contains(string(res.body), `"by"`) {
			t.Errorf("client view of the extension: %s", res.body)
		}

		// A reviewer cancels; the audit log names it too.
		if res := e.do(t, call{method: "POST", path: path + "/cancel", token: e.tokens["rex"]}); res.status != http.StatusOK {
			t.Fatalf("reviewer cancel: %d %s", res.status, res.body)
		}
		evs, err := st.ListAudit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		named := map[lethe.EventType]string{}
		for _, ev := range evs {
			if ev.Actor == lethe.ActorOperator {
				named[ev.Type] = ev.ActorID
			}
		}
		if named[lethe.EventRequestExtended] != "rex" || named[lethe.EventRequestCanceled] != "rex" {
			t.Errorf("operator actions in the audit log = %v", named)
		}
		// Requests an operator submits are its own in the audit log.
		for tok, want := range map[string]string{e.tokens["rex"]: "rex", adminTok: operators.AdminTokenName} {
			res := e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: tok,
				body: `{"identities":[{"type":"email","value":"by-` + want + `@example.com"}]}`})
			if res.status != http.StatusAccepted {
				t.Fatalf("submit as %s: %d %s", want, res.status, res.body)
			}
			v := res.view(t)
			evs, err := st.ListAudit(ctx, v.ID)
			if err != nil || len(evs) != 1 || evs[0].ActorID != want || (want == "rex") != (evs[0].Actor == lethe.ActorOperator) {
				t.Errorf("received event of a request submitted by %s: %+v, %v", want, evs, err)
			}
			if strings.Contains(string(res.body), `"client_id"`) {
				t.Errorf("operator's request names a client: %s", res.body)
			}
		}
		// Extending a closed request: refused.
		if res := e.do(t, call{method: "POST", path: path + "/extend", token: e.tokens["ada"], body: extend}); res.status != http.StatusConflict {
			t.Errorf("extending a canceled request: %d %s", res.status, res.body)
		}
	})
}

func TestOperatorTokens(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		throttle := auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{Failures: 5, Window: time.Minute, Block: time.Minute}, nil)
		e := newOpEnv(t, st, throttle)
		get := func(tok string) answer {
			return e.do(t, call{method: "GET", path: "/v1/deletion-requests", token: tok})
		}
		if res := get(e.tokens["vera"]); res.status != http.StatusOK {
			t.Fatalf("viewer token: %d %s", res.status, res.body)
		}
		if err := e.ops.SetDisabled(ctx, "vera", true); err != nil {
			t.Fatal(err)
		}
		if res := get(e.tokens["vera"]); res.status != http.StatusUnauthorized {
			t.Errorf("disabled operator: %d", res.status)
		}
		if err := e.ops.SetDisabled(ctx, "vera", false); err != nil {
			t.Fatal(err)
		}
		old := e.tokens["vera"]
		c, err := e.ops.Rotate(ctx, "vera")
		if err != nil || c.Token == old || !operators.IsToken(c.Token) {
			t.Fatalf("rotate: %+v, %v", c, err)
		}
		if res := get(old); res.status != http.StatusUnauthorized {
			t.Errorf("rotated-out token: %d", res.status)
		}
		if res := get(c.Token); res.status != http.StatusOK {
			t.Errorf("rotated token: %d", res.status)
		}
		if _, err := e.ops.Create(ctx, "vera", operators.RoleAdmin); lethe.ErrorCode(err) != lethe.ECONFLICT {
			t.Errorf("second vera: %v", err)
		}
		for _, bad := range []string{"admin-token", "", "a b", strings.Repeat("x", 65)} {
			if _, err := e.ops.Create(ctx, bad, operators.RoleViewer); lethe.ErrorCode(err) != lethe.EINVALID {
				t.Errorf("name %q: %v", bad, err)
			}
		}
		if _, err := e.ops.Create(ctx, "root", "superuser"); lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("unknown role: %v", err)
		}
		// Wrong operator tokens are throttled like every failed sign-in:
		// the fifth failure of one address (two above: the disabled and
		// the rotated-out token) blocks it, the right token too, until
		// the block ends.
		forged := "lethe_op_" + strings.Repeat("ab", 32)
		codes := []int{}
		for range 4 {
			codes = append(codes, get(forged).status)
		}
		if want := []int{401, 401, 429, 429}; !slices.Equal(codes, want) {
			t.Errorf("failed operator sign-ins answered %v; want %v", codes, want)
		}
		if res := get(c.Token); res.status != http.StatusTooManyRequests {
			t.Errorf("right token from a blocked address: %d", res.status)
		}
	})
}

// TestPartnerSeesStateNotHoldings: a client's view of its request has
// state and outcome per target but none of the counts, retention reasons,
// reach or errors; an operator's has everything; both name the client.
func TestPartnerSeesStateNotHoldings(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		e := newOpEnv(t, st, nil)
		res := e.create(t, clientATok, "holdings@example.com", nil)
		id := res.view(t).ID
		at := time.Now()
		if err := st.CreateTasks(ctx, id, []string{"billing", "crm"}, at); err != nil {
			t.Fatal(err)
		}
		if ok, err := st.FinishTask(ctx, store.FinishTaskParams{RequestID: id, Target: "billing", State: lethe.TaskDone, At: at,
			Report: lethe.Report{Items: []lethe.ReportItem{{Object: "invoices", Action: lethe.ActionRetain, Rows: 7, Reason: "tax law: 10 years"}}}}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if ok, err := st.FinishTask(ctx, store.FinishTaskParams{RequestID: id, Target: "crm", State: lethe.TaskFailed, At: at, LastError: "crm: timeout"}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if ok, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: id, To: lethe.StatusFailed, ToStage: lethe.StageDone, At: at,
			Reach: &lethe.Reach{Accounts: map[string]int{"billing/customers": 1}}}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		path := "/v1/deletion-requests/" + id
		partner := e.do(t, call{method: "GET", path: path, token: clientATok})
		operator := e.do(t, call{method: "GET", path: path, token: e.tokens["vera"]})
		for _, leak := range []string{"invoices", "tax law", `"rows"`, "billing/customers", "timeout", `"reach"`} {
			if strings.Contains(string(partner.body), leak) {
				t.Errorf("partner view holds %q: %s", leak, partner.body)
			}
			if !strings.Contains(string(operator.body), leak) {
				t.Errorf("operator view lacks %q: %s", leak, operator.body)
			}
		}
		for _, b := range []answer{partner, operator} {
			for _, want := range []string{`"status":"failed"`, `"client_id":"client-a"`, `"target":"billing","state":"done"`, `"target":"crm","state":"failed"`} {
				if !strings.Contains(string(b.body), want) {
					t.Errorf("view lacks %s: %s", want, b.body)
				}
			}
		}
		// Another client still sees nothing of it.
		if res := e.do(t, call{method: "GET", path: path, token: clientBTok}); res.status != http.StatusNotFound {
			t.Errorf("other client: %d", res.status)
		}
	})
}
