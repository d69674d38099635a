package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
	httpresponse "github.com/lethe-privacy/lethe/internal/http/response"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.Ready = func(context.Context) error { return errors.New("down") }
	})
	res := e.do(t, call{method: "GET", path: "/healthz"})
	if res.status != http.StatusOK || string(res.body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("healthz: %d %s", res.status, res.body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		readyErr error
	)
	e := newEnv(t, func(o *Options) {
		o.Ready = func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("readiness check without a deadline")
			}
			mu.Lock()
			defer mu.Unlock()
			return readyErr
		}
	})
	if res := e.do(t, call{method: "GET", path: "/readyz"}); res.status != http.StatusOK {
		t.Fatalf("ready: %d %s", res.status, res.body)
	}
	mu.Lock()
	readyErr = errors.New("river: queue db-internal-host-7 unreachable")
	mu.Unlock()
	res := e.do(t, call{method: "GET", path: "/readyz"})
	if res.status != http.StatusServiceUnavailable || string(res.body) != "{\"status\":\"unavailable\"}\n" {
		t.Errorf("not ready: %d %s", res.status, res.body)
	}
	if !strings.Contains(e.logs.String(), "db-internal-host-7") {
		t.Errorf("reason not logged: %s", e.logs.String())
	}

	// Without a Ready func the store's readiness is used.
	d := newEnv(t)
	if res := d.do(t, call{method: "GET", path: "/readyz"}); res.status != http.StatusOK {
		t.Errorf("default ready: %d %s", res.status, res.body)
	}
	d.store.Close()
	if res := d.do(t, call{method: "GET", path: "/readyz"}); res.status != http.StatusServiceUnavailable {
		t.Errorf("closed store: %d %s", res.status, res.body)
	}
}

func TestMetricsMount(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("lethe_up 1\n"))
	})
	e := newEnv(t, func(o *Options) { o.Metrics = metrics })
	if res := e.do(t, call{method: "GET", path: "/metrics"}); res.status != http.StatusOK || string(res.body) != "lethe_up 1\n" {
		t.Errorf("metrics: %d %s", res.status, res.body)
	}
	none := newEnv(t)
	if res := none.do(t, call{method: "GET", path: "/metrics"}); res.status != http.StatusNotFound {
		t.Errorf("metrics without handler: %d", res.status)
	}
}

func TestUnmatchedRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.do(t, call{method: "GET", path: "/v2/nothing", token: adminTok})
	if res.status != http.StatusNotFound || res.errorCode(t) != "not_found" {
		t.Errorf("unknown path: %d %s", res.status, res.body)
	}
	res = e.do(t, call{method: "DELETE", path: "/v1/deletion-requests", token: adminTok})
	if res.status != http.StatusMethodNotAllowed || res.errorCode(t) != httpresponse.CodeMethodNotAllowed {
		t.Errorf("wrong method: %d %s", res.status, res.body)
	}
	if got := res.header.Get("Allow"); !strings.Contains(got, "GET") || !strings.Contains(got, "POST") {
		t.Errorf("Allow = %q", got)
	}
}

type recordingObserver struct {
	mu    sync.Mutex
	calls []string
}

func (o *recordingObserver) HTTPRequest(route string, status int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		route += " (no duration)"
	}
	o.calls = append(o.calls, route+" "+http.StatusText(status))
}

// TestMiddleware: panics become 500s in the error shape with a logged
// stack; mounted routes share the middleware; the access log and the
// observer see the pattern, not the path.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	obs := &recordingObserver{}
	e := newEnv(t, func(o *Options) {
		o.Observer = obs
		o.Profiles = []Profile{mountOnly(func(mux *http.ServeMux) {
			mux.HandleFunc("POST /s2s/{thing}", func(w http.ResponseWriter, r *http.Request) {
				panic("boom in " + r.PathValue("thing"))
			})
			mux.HandleFunc("GET /s2s/ok", func(w http.ResponseWriter, r *http.Request) {
				if request.ID(r.Context()) == "" {
					t.Error("no request id in a mounted handler's context")
				}
				w.WriteHeader(http.StatusTeapot)
			})
		})}
	})
	res := e.do(t, call{method: "POST", path: "/s2s/x1", body: `{"secret-body":"do-not-log"}`,
		header: map[string]string{"X-Request-Id": "req-abcdefgh"}})
	if res.status != http.StatusInternalServerError || res.errorCode(t) != "internal" {
		t.Fatalf("panic: %d %s", res.status, res.body)
	}
	if !strings.Contains(string(res.body), `"internal error"`) {
		t.Errorf("panic answer: %s", res.body)
	}
	if got := res.header.Get("X-Request-Id"); got != "req-abcdefgh" {
		t.Errorf("X-Request-Id = %q, want the caller's", got)
	}
	e.do(t, call{method: "GET", path: "/s2s/ok", header: map[string]string{"X-Request-Id": "bad id with spaces"}})
	e.do(t, call{method: "GET", path: "/v1/deletion-requests?cursor=query-secret", token: adminTok})

	logs := e.logs.String()
	if strings.Contains(logs, "do-not-log") || strings.Contains(logs, "query-secret") || strings.Contains(logs, "bad id with spaces") {
		t.Errorf("log holds a body, a query value or a rejected request id:\n%s", logs)
	}
	var panicked, accessed bool
	for _, rec := range e.logs.records(t) {
		switch rec["msg"] {
		case "panic serving request":
			panicked = true
			if rec["request_id"] != "req-abcdefgh" || !strings.Contains(rec["stack"].(string), "goroutine") || rec["panic"] != "boom in x1" {
				t.Errorf("panic record: %v", rec)
			}
		case "http request":
			if rec["route"] == "POST /s2s/{thing}" {
				accessed = true
				want := map[string]any{"method": "POST", "route": "POST /s2s/{thing}", "status": 500.0, "request_id": "req-abcdefgh"}
				got := map[string]any{"method": rec["method"], "route": rec["route"], "status": rec["status"], "request_id": rec["request_id"]}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("access record (-want +got):\n%s", diff)
				}
				if _, ok := rec["duration"]; !ok {
					t.Errorf("access record without duration: %v", rec)
				}
			}
			if len(rec["request_id"].(string)) < 8 {
				t.Errorf("short request id: %v", rec)
			}
		}
	}
	if !panicked || !accessed {
		t.Errorf("panic logged %v, access logged %v:\n%s", panicked, accessed, logs)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{"POST /s2s/{thing} Internal Server Error", "GET /s2s/ok I'm a teapot", "GET /v1/deletion-requests Bad Request"}
	if diff := cmp.Diff(want, obs.calls); diff != "" {
		t.Errorf("observer (-want +got):\n%s", diff)
	}
}

func TestHTTPServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.srv.HTTPServer("127.0.0.1:0")
	got := []any{hs.Addr, hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes, hs.ErrorLog != nil}
	want := []any{"127.0.0.1:0", 5 * time.Second, 30 * time.Second, 30 * time.Second, 120 * time.Second, 64 << 10, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("server (-want +got):\n%s", diff)
	}

	// Over a real connection: an oversized declared body is refused.
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/v1/deletion-requests", strings.NewReader(strings.Repeat(" ", 100<<10)))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

// mountOnly is a Profile that claims no prefix: its routes answer errors
// in the native shape.
type mountOnly func(mux *http.ServeMux)

func (m mountOnly) Prefixes() []string                                   { return nil }
func (m mountOnly) Mount(mux *http.ServeMux)                             { m(mux) }
func (m mountOnly) WriteError(http.ResponseWriter, *http.Request, error) {}

// teapotProfile owns /tea and answers every error as 418 with its code.
type teapotProfile struct{}

func (teapotProfile) Prefixes() []string { return []string{"/tea"} }
func (teapotProfile) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /tea", func(http.ResponseWriter, *http.Request) { panic("boom") })
}
func (teapotProfile) WriteError(w http.ResponseWriter, _ *http.Request, err error) {
	w.WriteHeader(http.StatusTeapot)
	w.Write([]byte("tea:" + lethe.ErrorCode(err)))
}

// TestProfileOwnsItsPaths: every path under a profile's prefix that no
// route matches (a trailing slash, a deeper path, another method), and a
// panic in its handler, is answered in the profile's shape; paths beside
// the prefix stay native.
func TestProfileOwnsItsPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.Profiles = []Profile{teapotProfile{}} })
	for _, c := range []struct {
		method, path, want string
	}{
		{"POST", "/tea", "tea:internal"},
		{"POST", "/tea/", "tea:not_found"},
		{"GET", "/tea/x/y", "tea:not_found"},
		{"GET", "/tea", "tea:method_not_allowed"},
	} {
		res := e.do(t, call{method: c.method, path: c.path})
		if res.status != http.StatusTeapot || string(res.body) != c.want {
			t.Errorf("%s %s: %d %s, want 418 %s", c.method, c.path, res.status, res.body, c.want)
		}
	}
	res := e.do(t, call{method: "GET", path: "/teapot"})
	if res.status != http.StatusNotFound || res.errorCode(t) != lethe.ENOTFOUND {
		t.Errorf("GET /teapot: %d %s, want the native 404", res.status, res.body)
	}
}

// slowProfile reads its body, then works longer than the body idle
// timeout before it answers with whether its context survived.
type slowProfile struct{}

func (slowProfile) Prefixes() []string { return []string{"/slow"} }
func (slowProfile) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		if _, err := request.ReadBody(r, 1<<10); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			w.WriteHeader(http.StatusGone)
		case <-time.After(600 * time.Millisecond):
			w.WriteHeader(http.StatusNoContent)
		}
	})
}
func (slowProfile) WriteError(w http.ResponseWriter, _ *http.Request, _ error) {
	w.WriteHeader(http.StatusInternalServerError)
}

// TestBodyIdleOnlyWhileReading: the stalled-body cut-off ends with the
// body; a handler may work longer than it afterwards without its context
// being canceled.
func TestBodyIdleOnlyWhileReading(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.Profiles = []Profile{slowProfile{}}
		o.Timeouts.BodyIdle = 200 * time.Millisecond
	})
	srv := httptest.NewServer(e.srv.Handler())
	defer srv.Close()
	res, err := http.Post(srv.URL+"/slow", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d, want 204 (410: the context was canceled)", res.StatusCode)
	}
}

// TestMessagesEchoNoValues: refusals of values the caller chose (a
// regulation, an identity type, a member name) say what is wrong without
// repeating them.
func TestMessagesEchoNoValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, body := range []string{
		`{"identities":[{"type":"email","value":"a@b.co"}],"regulation":"jane.doe@example.com"}`,
		`{"identities":[{"type":"jane.doe@example.com","value":"a@b.co"}]}`,
		`{"identities":[{"type":"email","value":"a@b.co"}],"jane.doe@example.com":1}`,
	} {
		res := e.do(t, call{method: "POST", path: "/v1/deletion-requests", token: adminTok, body: body})
		if res.status != http.StatusBadRequest {
			t.Fatalf("%s: %d %s, want 400", body, res.status, res.body)
		}
		if strings.Contains(string(res.body), "jane") {
			t.Errorf("%s: answer %s echoes the caller's value", body, res.body)
		}
	}
}
