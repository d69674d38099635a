package profiletest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// TestNativeIsolation wires the native API with both profiles mounted, as
// cmd/lethe does, and checks that a client's token sees only its own
// requests.
func TestNativeIsolation(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := profiletest.OpenEnv(t, b)
		s2sH, err := s2s.New(s2s.Options{Intake: e.Intake, Clients: e.Clients, Limiter: e.Limiter, Logger: e.Logger})
		if err != nil {
			t.Fatal(err)
		}
		connectH, err := connect.New(connect.Options{Intake: e.Intake, Clients: e.Clients, Store: e.Store, Keyring: e.Keyring, Limiter: e.Limiter, Logger: e.Logger})
		if err != nil {
			t.Fatal(err)
		}
		srv := profiletest.Serve(t, e, profiletest.ServeOptions{
			Auth: []auth.Authenticator{
				auth.AdminToken("admin-token"),
				auth.Limited(httpapi.ClientTokens(e.Clients), e.Limiter, httpapi.RateLimitPrefix,
					ratelimit.Rules{Default: ratelimit.Rule{Limit: 5, Window: time.Minute, Block: time.Minute}}),
			},
			Profiles: []httpapi.Profile{s2sH, connectH},
		})
		do := func(method, path, token string, header map[string]string, body string) *httptest.ResponseRecorder {
			t.Helper()
			r := httptest.NewRequest(method, path, strings.NewReader(body))
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			for k, v := range header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			return w
		}

		a, err := e.Clients.Create(ctx, clients.CreateParams{Name: "a"})
		if err != nil {
			t.Fatal(err)
		}
		bc, err := e.Clients.Create(ctx, clients.CreateParams{Name: "b"})
		if err != nil {
			t.Fatal(err)
		}
		// B submits through s2s.
		body := `{"user_id":"12345"}`
		w := do("POST", "/user_deletion_requests", "", map[string]string{"X-API-KEY": bc.APIKey, "Authorization": s2s.Sign([]byte(body), []byte(bc.Secret)), "Content-Type": "application/json"}, body)
		var created struct{ ID string }
		if err := json.Unmarshal(w.Body.Bytes(), &created); w.Code != 200 || err != nil {
			t.Fatalf("s2s: %d %s", w.Code, w.Body.String())
		}
		// Each client gets a token through connect.
		tokenOf := func(c clients.Created) string {
			t.Helper()
			w := do("POST", "/v2/oauth/token", "", map[string]string{"Content-Type": "application/json"},
				`{"client_id":"`+c.ClientID+`","client_secret":"`+c.ClientSecret+`","grant_type":"client_credentials"}`)
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &tok); w.Code != 200 || err != nil {
				t.Fatalf("token: %d %s", w.Code, w.Body.String())
			}
			return tok.AccessToken
		}
		tokA, tokB := tokenOf(a), tokenOf(bc)

		path := "/v1/deletion-requests/" + created.ID
		if w := do("GET", path, tokA, nil, ""); w.Code != http.StatusNotFound {
			t.Fatalf("client A reading B's request: %d %s, want 404", w.Code, w.Body.String())
		}
		if w := do("GET", path, tokB, nil, ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), created.ID) {
			t.Fatalf("client B reading its request: %d %s", w.Code, w.Body.String())
		}
		if w := do("GET", path, "admin-token", nil, ""); w.Code != http.StatusOK {
			t.Fatalf("admin: %d", w.Code)
		}
		if w := do("GET", path, "", nil, ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", w.Code)
		}
		if w := do("GET", path, "bogus", nil, ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("bogus token: %d", w.Code)
		}
		// A's list is empty; B's has the request.
		if w := do("GET", "/v1/deletion-requests", tokA, nil, ""); w.Code != 200 || strings.Contains(w.Body.String(), created.ID) {
			t.Fatalf("client A's list: %d %s", w.Code, w.Body.String())
		}

		// Native limit per client: B has used 1 of 5 calls.
		for i := 0; i < 4; i++ {
			if w := do("GET", path, tokB, nil, ""); w.Code != 200 {
				t.Fatalf("call %d: %d", i+2, w.Code)
			}
		}
		w = do("GET", path, tokB, nil, "")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "60" {
			t.Fatalf("6th native call: %d Retry-After %q, want 429 60", w.Code, w.Header().Get("Retry-After"))
		}
		// A is not affected by B's limit.
		if w := do("GET", "/v1/deletion-requests", tokA, nil, ""); w.Code != 200 {
			t.Fatalf("client A after B's limit: %d", w.Code)
		}

		// The profiles keep their own shapes behind the native server, on
		// their routes and on every path under them.
		w = do("GET", "/user_deletion_requests", "", nil, "")
		if w.Code != 405 || w.Body.String() != `{ "errors": ["Method not allowed"] }` {
			t.Fatalf("s2s 405 through the server: %d %s", w.Code, w.Body.String())
		}
		for _, p := range []string{"/user_deletion_requests/", "/user_deletion_requests/x/y"} {
			w = do("POST", p, "", nil, "")
			if w.Code != 404 || w.Body.String() != `{ "errors": ["Not found"] }` {
				t.Fatalf("s2s unknown path %s through the server: %d %s", p, w.Code, w.Body.String())
			}
		}
	})
}
