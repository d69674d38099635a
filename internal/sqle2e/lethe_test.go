package sqle2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

const adminToken = "e2e-admin-token"

// waitTimeout bounds waiting for requests to finish: generous, because the
// three databases' tests share two cores in CI.
const waitTimeout = 3 * time.Minute

// instance is lethe running in-process, wired as cmd/lethe/serve.go wires
// it (store, pipeline with the SQL connector, intake, native API), behind
// a real HTTP server.
type instance struct {
	url string
	st  store.Store
}

// startLethe runs lethe with its own store (SQLite or PostgreSQL) and one
// SQL target named "shop" configured by mapYAML.
func startLethe(t *testing.T, storeDialect, mapYAML string) *instance {
	t.Helper()
	ctx := context.Background()
	var st testdb.MigratedStore
	switch storeDialect {
	case "postgres":
		// One connection per worker plus spares, as serve sizes the pool.
		st = testdb.OpenPostgres(t, testdb.PostgresDSN(t), postgres.Options{MaxConns: 20})
	default:
		st = testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{})
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}

	conn, err := sqlconn.New(ctx, connector.Target{Name: "shop", Kind: sqlconn.Kind,
		Decode: func(v any) error { return yaml.Unmarshal([]byte(mapYAML), v) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Validate(ctx); err != nil {
		t.Fatalf("validate shop target: %v", err)
	}

	pipe, err := pipeline.New(pipeline.Config{
		// Ten jobs at once on every database: concurrent erasures must not
		// deadlock (TestEraseFiftySubjects insists on one attempt per task).
		Workers: 10,
		// A retry is a failure the tests do not expect; a short backoff
		// shows it quickly. Production's default is 1s..10m.
		MaxAttempts:       pipeline.DefaultMaxAttempts,
		BackoffBase:       100 * time.Millisecond,
		BackoffMax:        2 * time.Second,
		FetchPollInterval: 20 * time.Millisecond,
		// Long enough that a loaded machine never times a job out: a
		// second attempt must mean a real failure (a deadlock still
		// shows, as a job that never ends).
		JobTimeout: 5 * time.Minute,
	}, st, []pipeline.Target{{Name: "shop", Conn: conn}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipe.Start(context.WithoutCancel(ctx)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pipe.Stop(ctx); err != nil {
			t.Errorf("stop pipeline: %v", err)
		}
	})

	api := httpapi.New(httpapi.Options{
		Intake: intake.New(st, pipe, testdb.Keyring(t), intake.Config{}),
		Store:  st,
		Auth:   []auth.Authenticator{auth.AdminToken(adminToken)},
		// Warnings and errors in the test's output: a 5xx shows its reason.
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &instance{url: srv.URL, st: st}
}

// identity is one identity as the native API takes it.
type identity struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// view is the part of the native request view the tests read.
type view struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Tasks  []struct {
		Target    string `json:"target"`
		State     string `json:"state"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
		Report    struct {
			Items []struct {
				Object string `json:"object"`
				Action string `json:"action"`
				Rows   int64  `json:"rows"`
			} `json:"items"`
		} `json:"report"`
	} `json:"tasks"`
}

// call sends one native API request as the admin and returns the status
// and body.
func (in *instance) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// submit creates a deletion request and returns its id; anything but 202
// fails the test.
func (in *instance) submit(t *testing.T, ids ...identity) string {
	t.Helper()
	status, body := in.call(t, "POST", "/v1/deletion-requests", map[string]any{"identities": ids})
	if status != http.StatusAccepted {
		t.Fatalf("submit: status %d: %s", status, body)
	}
	var v view
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		t.Fatalf("submit: not a request view: %s", body)
	}
	return v.ID
}

// wait polls the request until it is terminal and returns its last view.
func (in *instance) wait(t *testing.T, id string) view {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		status, body := in.call(t, "GET", "/v1/deletion-requests/"+id, nil)
		if status != http.StatusOK {
			t.Fatalf("get %s: status %d: %s", id, status, body)
		}
		var v view
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		switch v.Status {
		case "completed", "failed", "canceled":
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s still %s after %s: %s", id, v.Status, waitTimeout, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reported returns the rows per object of a finished request's shop task.
func (v view) reported() map[string]int64 {
	out := map[string]int64{}
	for _, task := range v.Tasks {
		if task.Target != "shop" {
			continue
		}
		for _, it := range task.Report.Items {
			out[it.Object] += it.Rows
		}
	}
	return out
}
