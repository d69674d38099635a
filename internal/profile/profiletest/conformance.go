package profiletest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
)

// Surface describes one API surface (the native API or a profile mounted
// on it) to Conformance.
type Surface struct {
	// Env holds the services the surface serves from.
	Env *Env
	// Handler serves the surface as lethe serves it: the native server
	// with the profile mounted (see Serve).
	Handler http.Handler
	// Valid builds a request the surface accepts (2xx) with good
	// credentials; n varies the subject so that each call is new.
	Valid func(t *testing.T, n int) *http.Request
	// BadAuth builds the same request with wrong credentials: a wrong
	// secret, signature or token for a client key that exists.
	BadAuth func(t *testing.T, n int) *http.Request
	// WithBody builds an authenticated request (signed where the surface
	// signs) with body as it is.
	WithBody func(t *testing.T, body []byte) *http.Request
	// AuthStatus is what BadAuth is answered (401, or 403 for s2s).
	AuthStatus int
	// InvalidStatus is what a body of the wrong schema is answered (400,
	// or 422 for s2s).
	InvalidStatus int
	// Limit is how many Valid requests the rate limit lets through in a
	// window (of at most an hour, blocks included) before the next one is
	// refused.
	Limit int
	// MaxBodyBytes is the body limit the surface was built with.
	MaxBodyBytes int64
	// UnknownPaths are paths under the surface's prefixes that no route
	// serves.
	UnknownPaths []string
	// Message returns the message of body, an error answer, and fails
	// the test when body is not in the surface's own error shape.
	Message func(t *testing.T, body []byte) string
}

// Conformance checks what every API surface must do alike, each in its
// own error shape: wrong credentials are refused and change nothing;
// failed sign-ins are throttled per client key and source address (even
// good credentials are then refused); the rate limit answers 429 with
// Retry-After; a body over the limit is 413; a body shorter than its
// Content-Length is 400 within a few seconds; error messages never echo
// the caller's member names or values; and every path under the surface
// that no route serves is answered in the surface's shape.
func Conformance(t *testing.T, s Surface) {
	t.Helper()
	// errorAnswer checks an error answer's status and shape.
	errorAnswer := func(t *testing.T, what string, w *httptest.ResponseRecorder, status int) string {
		t.Helper()
		if w.Code != status {
			t.Fatalf("%s: status %d %s, want %d", what, w.Code, w.Body.String(), status)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", what, cc)
		}
		msg := s.Message(t, w.Body.Bytes())
		if msg == "" {
			t.Errorf("%s: empty message in %s", what, w.Body.String())
		}
		return msg
	}
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, r)
		return w
	}
	from := func(r *http.Request, addr string) *http.Request {
		r.RemoteAddr = addr + ":40000"
		return r
	}

	t.Run("auth failure", func(t *testing.T) {
		before := CountRequests(t, s.Env.Store)
		w := serve(from(s.BadAuth(t, 1), "192.0.2.10"))
		errorAnswer(t, "wrong credentials", w, s.AuthStatus)
		if got := CountRequests(t, s.Env.Store); got != before {
			t.Fatalf("a refused request changed the store: %d requests, had %d", got, before)
		}
	})

	t.Run("body limit", func(t *testing.T) {
		big := []byte(`{"x":"` + strings.Repeat("a", int(s.MaxBodyBytes)) + `"}`)
		errorAnswer(t, "oversized body", serve(from(s.WithBody(t, big), "192.0.2.11")), http.StatusRequestEntityTooLarge)
	})

	t.Run("no echo", func(t *testing.T) {
		const name, value = "jane.member@example.com", "secret-value-4915112345678"
		for _, body := range []string{
			`{"` + name + `":"` + value + `"}`,
			`{"` + name + `":1,"` + name + `":2}`,
		} {
			msg := errorAnswer(t, "unknown member", serve(from(s.WithBody(t, []byte(body)), "192.0.2.12")), s.InvalidStatus)
			if strings.Contains(msg, "jane") || strings.Contains(msg, "secret-value") {
				t.Errorf("message %q echoes the caller's member name or value", msg)
			}
		}
	})

	t.Run("unknown paths", func(t *testing.T) {
		for _, p := range s.UnknownPaths {
			r := httptest.NewRequest(http.MethodPost, p, strings.NewReader(`{}`))
			errorAnswer(t, "POST "+p, serve(from(r, "192.0.2.13")), http.StatusNotFound)
		}
	})

	t.Run("truncated body", func(t *testing.T) {
		srv := httptest.NewServer(s.Handler)
		defer srv.Close()
		r := s.WithBody(t, []byte(`{"a":"b"}`))
		status, body, took := sendTruncated(t, srv.Listener.Addr().String(), r)
		if status != http.StatusBadRequest || took > 4*time.Second {
			t.Fatalf("a body shorter than its Content-Length: %d after %s, want 400 within seconds", status, took)
		}
		s.Message(t, body)
	})

	t.Run("rate limit", func(t *testing.T) {
		// The calls above counted too; start from a fresh window.
		s.Env.Clock.Advance(time.Hour)
		for i := range s.Limit {
			if w := serve(from(s.Valid(t, 100+i), "192.0.2.14")); w.Code >= 300 {
				t.Fatalf("call %d of %d: %d %s", i+1, s.Limit, w.Code, w.Body.String())
			}
		}
		w := serve(from(s.Valid(t, 100+s.Limit), "192.0.2.14"))
		errorAnswer(t, "over the limit", w, http.StatusTooManyRequests)
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
		}
	})

	// Last: it blocks the client key for the throttle's block time.
	t.Run("failed sign-ins throttled", func(t *testing.T) {
		const addr = "198.51.100.7"
		refused := 0
		for i := range auth.DefaultFailuresPerAddr.Failures {
			w := serve(from(s.BadAuth(t, 200+i), addr))
			if w.Code == http.StatusTooManyRequests {
				break
			}
			errorAnswer(t, "wrong credentials", w, s.AuthStatus)
			refused++
		}
		if refused >= auth.DefaultFailuresPerAddr.Failures {
			t.Fatalf("%d wrong credentials in a row, none throttled", refused)
		}
		w := serve(from(s.BadAuth(t, 300), addr))
		errorAnswer(t, "throttled wrong credentials", w, http.StatusTooManyRequests)
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
		}
		// While blocked, good credentials from there are refused too:
		// a right guess must look like a wrong one.
		before := CountRequests(t, s.Env.Store)
		errorAnswer(t, "good credentials while throttled", serve(from(s.Valid(t, 301), addr)), http.StatusTooManyRequests)
		if got := CountRequests(t, s.Env.Store); got != before {
			t.Fatalf("a throttled request changed the store")
		}
	})
}

// sendTruncated writes r to addr over a raw connection with a
// Content-Length larger than its body, and then nothing more, keeping the
// connection open; it returns the answer's status and body and how long
// it took.
func sendTruncated(t *testing.T, addr string, r *http.Request) (int, []byte, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: lethe.test\r\n", r.Method, r.URL.RequestURI())
	for k, vs := range r.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", len(body)+100)
	start := time.Now()
	if _, err := conn.Write(append(head.Bytes(), body...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v (after %s)", err, time.Since(start))
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, time.Since(start)
}

// ServeOptions adjust the server Serve builds.
type ServeOptions struct {
	Auth     []auth.Authenticator
	Profiles []httpapi.Profile
}

// Serve returns the native server over e, as cmd/lethe wires it, with
// the given authenticators and profiles, and a body idle timeout of one
// second so that stalled bodies are cut quickly.
func Serve(t *testing.T, e *Env, o ServeOptions) http.Handler {
	t.Helper()
	return httpapi.New(httpapi.Options{
		Intake:   e.Intake,
		Store:    e.Store,
		Auth:     o.Auth,
		Profiles: o.Profiles,
		Throttle: e.Throttle,
		Logger:   e.Logger,
		Timeouts: httpapi.Timeouts{BodyIdle: time.Second},
	}).Handler()
}

// NativeMessage returns the message of a body in the native error shape,
// {"error":{"code":"...","message":"..."}}, and fails t when body is not
// exactly that.
func NativeMessage(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || b.Error.Code == "" {
		t.Fatalf("body %s is not in the native error shape (%v)", body, err)
	}
	return b.Error.Message
}
