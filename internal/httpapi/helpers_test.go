package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

const (
	adminTok   = "admin-secret-token"
	clientATok = "client-a-token"
	clientBTok = "client-b-token"
)

// nopEnqueuer stands in for the pipeline: these tests are about the HTTP
// layer, and the request row is what they inspect.
type nopEnqueuer struct{}

func (nopEnqueuer) EnqueueResolve(context.Context, store.Tx, string) error { return nil }

// tokenAuth maps bearer tokens to client principals, as the client token
// authenticator of a later feature will.
type tokenAuth map[string]auth.Principal

func (m tokenAuth) Authenticate(_ context.Context, r *http.Request) (auth.Principal, error) {
	tok, ok := request.BearerToken(r)
	if !ok {
		return auth.Principal{}, auth.ErrUnauthorized()
	}
	p, ok := m[tok]
	if !ok {
		return auth.Principal{}, auth.ErrUnauthorized()
	}
	return p, nil
}

// logBuffer collects log output from concurrent handlers.
type logBuffer struct{ testdb.SyncBuffer }

// lines returns the JSON log records.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

type env struct {
	store *sqlite.Store
	srv   *Server
	logs  *logBuffer
	// bodies keeps every response body, for the no-identity check.
	mu     sync.Mutex
	bodies []string
}

// newEnv returns a server on a fresh, migrated SQLite database with the
// admin token and two clients. opt may adjust the options.
func newEnv(t *testing.T, opt ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	kr := testdb.Keyring(t)
	st := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{Keyring: kr})
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	o := Options{
		Intake: intake.New(st, nopEnqueuer{}, kr, intake.Config{}),
		Store:  st,
		Auth: []auth.Authenticator{
			auth.AdminToken(adminTok),
			tokenAuth{clientATok: {ClientID: "client-a"}, clientBTok: {ClientID: "client-b"}},
		},
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range opt {
		f(&o)
	}
	return &env{store: st, srv: New(o), logs: logs}
}

type call struct {
	method, path string
	token        string            // bearer token; "" for none
	body         string            // sent as is
	contentType  string            // default application/json when body is set
	header       map[string]string // extra headers
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t *testing.T, c call) answer {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, c.path, body)
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	switch {
	case c.contentType != "":
		r.Header.Set("Content-Type", c.contentType)
	case c.body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	e.mu.Lock()
	e.bodies = append(e.bodies, string(b))
	e.mu.Unlock()
	return answer{status: res.StatusCode, header: res.Header, body: b}
}

// decode unmarshals the response body into v.
func (r answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response body %q: %v", r.body, err)
	}
}

// errorCode returns the code of a native error body, failing the test if
// the body is not one.
func (r answer) errorCode(t *testing.T) string {
	t.Helper()
	var b struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	r.decode(t, &b)
	if b.Error == nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("not an error body: %s", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q", ct)
	}
	return b.Error.Code
}

// view is the request view as a client decodes it.
type view struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Regulation  string `json:"regulation"`
	ExternalID  string `json:"external_id"`
	ReceivedAt  string `json:"received_at"`
	DueAt       string `json:"due_at"`
	StartedAt   string `json:"started_at"`
	CompletedAt string `json:"completed_at"`
	Tasks       []struct {
		Target     string `json:"target"`
		State      string `json:"state"`
		Attempts   int    `json:"attempts"`
		LastError  string `json:"last_error"`
		StartedAt  string `json:"started_at"`
		FinishedAt string `json:"finished_at"`
		Report     struct {
			Items []struct {
				Object string `json:"object"`
				Action string `json:"action"`
				Rows   int64  `json:"rows"`
				Reason string `json:"reason"`
				Until  string `json:"until"`
			} `json:"items"`
		} `json:"report"`
	} `json:"tasks"`
}

func (r answer) view(t *testing.T) view {
	t.Helper()
	var v view
	r.decode(t, &v)
	if v.ID == "" {
		t.Fatalf("not a request view: %s", r.body)
	}
	return v
}

// create submits identities for email as tok and returns the response.
func (e *env) create(t *testing.T, tok, email string, header map[string]string) answer {
	t.Helper()
	return e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: tok, header: header,
		body: `{"identities":[{"type":"email","value":"` + email + `"}]}`})
}

// countRequests returns how many requests the store holds.
func (e *env) countRequests(t *testing.T) int {
	t.Helper()
	rs, _, err := e.store.ListRequests(context.Background(), store.ListFilter{Scope: store.Scope{All: true}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

func mustGetRequest(t *testing.T, st store.Store, id string) *lethe.Request {
	t.Helper()
	r, err := st.GetRequest(context.Background(), id, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
