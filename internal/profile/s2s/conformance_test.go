package s2s_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

var errorsShape = regexp.MustCompile(`^\{ "errors": \[("(?:[^"\\]|\\.)*")\] \}$`)

// s2sMessage returns the message of a body in the contract's error shape,
// { "errors": ["..."] }, and fails t when body is not exactly that.
func s2sMessage(t *testing.T, body []byte) string {
	t.Helper()
	m := errorsShape.FindSubmatch(body)
	if m == nil {
		t.Fatalf("body %s is not in the s2s error shape", body)
	}
	msg, err := strconv.Unquote(string(m[1]))
	if err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return msg
}

// TestConformance runs the API surface suite against the profile, mounted
// on the native server as lethe serves it.
func TestConformance(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		e := profiletest.OpenEnv(t, b)
		const limit = 5
		h, err := s2s.New(s2s.Options{
			Intake: e.Intake, Clients: e.Clients, Limiter: e.Limiter,
			Rules:    ratelimit.Rules{Default: ratelimit.Rule{Limit: limit, Window: 10 * time.Minute, Block: 10 * time.Minute}},
			Throttle: e.Throttle, Logger: e.Logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.Clients.Create(context.Background(), clients.CreateParams{Name: "conformance"})
		if err != nil {
			t.Fatal(err)
		}
		post := func(sig string, body []byte) *http.Request {
			r := httptest.NewRequest(http.MethodPost, s2s.Path, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-API-KEY", c.APIKey)
			r.Header.Set("Authorization", sig)
			return r
		}
		userID := func(n int) []byte { return fmt.Appendf(nil, `{"user_id":"user-%d"}`, n) }
		profiletest.Conformance(t, profiletest.Surface{
			Env:     e,
			Handler: profiletest.Serve(t, e, profiletest.ServeOptions{Profiles: []httpapi.Profile{h}}),
			Valid: func(t *testing.T, n int) *http.Request {
				return post(s2s.Sign(userID(n), []byte(c.Secret)), userID(n))
			},
			BadAuth: func(t *testing.T, n int) *http.Request {
				return post(s2s.Sign(userID(n), []byte("not-the-secret")), userID(n))
			},
			WithBody: func(t *testing.T, body []byte) *http.Request {
				return post(s2s.Sign(body, []byte(c.Secret)), body)
			},
			AuthStatus:    http.StatusForbidden,
			InvalidStatus: http.StatusUnprocessableEntity,
			Limit:         limit,
			MaxBodyBytes:  s2s.DefaultMaxBodyBytes,
			UnknownPaths:  []string{s2s.Path + "/", s2s.Path + "/x/y"},
			Message:       s2sMessage,
		})
	})
}
