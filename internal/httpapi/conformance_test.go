package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// TestConformance runs the API surface suite against the native API with
// the admin token and client tokens, rate-limited as lethe serves them.
func TestConformance(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		e := profiletest.OpenEnv(t, b)
		const limit = 5
		const admin = "conformance-admin-token"
		rules := ratelimit.Rules{Default: ratelimit.Rule{Limit: limit, Window: time.Minute, Block: time.Minute}}
		handler := profiletest.Serve(t, e, profiletest.ServeOptions{Auth: []auth.Authenticator{
			auth.Limited(auth.AdminToken(admin), e.Limiter, httpapi.RateLimitPrefix, rules),
			auth.Limited(httpapi.ClientTokens(e.Clients), e.Limiter, httpapi.RateLimitPrefix, rules),
		}})
		post := func(token string, body []byte) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/v1/deletion-requests", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+token)
			return r
		}
		subject := func(n int) []byte {
			return fmt.Appendf(nil, `{"identities":[{"type":"email","value":"subject-%d@example.com"}]}`, n)
		}
		profiletest.Conformance(t, profiletest.Surface{
			Env:     e,
			Handler: handler,
			Valid:   func(t *testing.T, n int) *http.Request { return post(admin, subject(n)) },
			BadAuth: func(t *testing.T, n int) *http.Request {
				return post(fmt.Sprintf("wrong-admin-token-%d", n), subject(n))
			},
			WithBody:      func(t *testing.T, body []byte) *http.Request { return post(admin, body) },
			AuthStatus:    http.StatusUnauthorized,
			InvalidStatus: http.StatusBadRequest,
			Limit:         limit,
			MaxBodyBytes:  httpapi.DefaultMaxBodyBytes,
			UnknownPaths:  []string{"/v1/nope", "/v1/deletion-requests/x/y/z", "/nope/"},
			Message:       profiletest.NativeMessage,
		})
	})
}
