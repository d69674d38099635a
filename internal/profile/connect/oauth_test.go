package connect_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// TestStandardOAuthClient: golang.org/x/oauth2/clientcredentials gets a
// token in each of its three ways of sending the client's credentials
// (form parameters, HTTP Basic, and detecting which works), the token
// works on the deletion endpoint, and a wrong secret is an RFC 6749 error
// the library understands.
func TestStandardOAuthClient(t *testing.T) {
	k := testdb.Keyring(t)
	st, _ := profiletest.Backends()[0].Open(t, k)
	e := profiletest.NewEnv(t, st, k, ratelimittest.NewClock())
	h, err := connect.New(connect.Options{Intake: e.Intake, Clients: e.Clients, Store: e.Store, Keyring: k, Limiter: e.Limiter, Throttle: e.Throttle, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(profiletest.Serve(t, e, profiletest.ServeOptions{Profiles: []httpapi.Profile{h}}))
	defer srv.Close()
	// A secret with characters that Basic authentication must escape.
	c, err := e.Clients.Create(context.Background(), clients.CreateParams{Name: "oauth", ClientID: "app:one+two", ClientSecret: "s3cr:t/with%odd&chars="})
	if err != nil {
		t.Fatal(err)
	}
	styles := map[string]oauth2.AuthStyle{
		"params": oauth2.AuthStyleInParams,
		"header": oauth2.AuthStyleInHeader,
		"detect": oauth2.AuthStyleAutoDetect,
	}
	for name, style := range styles {
		t.Run(name, func(t *testing.T) {
			cfg := clientcredentials.Config{
				ClientID:     c.ClientID,
				ClientSecret: c.ClientSecret,
				TokenURL:     srv.URL + connect.PathToken,
				Scopes:       []string{connect.Scope},
				AuthStyle:    style,
			}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatalf("token: %v", err)
			}
			if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
				t.Fatalf("token %+v", tok)
			}
			res, err := cfg.Client(context.Background()).Post(srv.URL+connect.PathDelete, "application/json", strings.NewReader(`{"identifier":"oauth-`+name+`@example.com"}`))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("deletion with the token: %d", res.StatusCode)
			}

			bad := cfg
			bad.ClientSecret = "wrong"
			_, err = bad.Token(context.Background())
			re, ok := err.(*oauth2.RetrieveError)
			if !ok || re.ErrorCode != "invalid_client" || re.Response.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong secret: %#v, want an invalid_client RetrieveError", err)
			}
		})
	}
	if n := profiletest.CountRequests(t, e.Store); n != int64(len(styles)) {
		t.Fatalf("%d requests stored, want %d", n, len(styles))
	}
}

// TestTokenBothWays: credentials sent both in the header and in the body
// are refused (RFC 6749 2.3: one method per request).
func TestTokenBothWays(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	r := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	req := httptest.NewRequest(http.MethodPost, connect.PathToken, strings.NewReader("grant_type=client_credentials&client_id=sf-client&client_secret=sf-secret"))
	for k, v := range r {
		req.Header.Set(k, v)
	}
	req.SetBasicAuth("sf-client", "sf-secret")
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, req)
	expect(t, w, 400, oauthErr("invalid_request", "client credentials must be sent one way: in the Authorization header or in the body, not both"))
}

// TestTokenThrottle: 1,500 wrong secrets for one client_id get 10 plain
// refusals, then 429 in RFC 6749's shape with Retry-After; the right
// secret is refused alike while the block lasts, and works after it.
func TestTokenThrottle(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	send := func(secret, addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, connect.PathToken, strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("sf-client", secret)
		r.RemoteAddr = addr + ":5555"
		w := httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		return w
	}
	counts := map[int]int{}
	for i := range 1500 {
		// Spread over addresses, as a botnet would: the client key
		// still counts every failure.
		w := send("wrong", "203.0.113."+strconv.Itoa(i%200))
		counts[w.Code]++
		if w.Code == http.StatusTooManyRequests {
			if w.Body.String() != oauthErr("slow_down", "too many failed sign-ins; retry later") || w.Header().Get("Retry-After") == "" {
				t.Fatalf("throttled answer: %s Retry-After %q", w.Body.String(), w.Header().Get("Retry-After"))
			}
		}
	}
	want := map[int]int{http.StatusUnauthorized: auth.DefaultFailuresPerKey.Failures - 1, http.StatusTooManyRequests: 1500 - auth.DefaultFailuresPerKey.Failures + 1}
	if counts[401] != want[401] || counts[429] != want[429] || len(counts) != 2 {
		t.Fatalf("answers %v, want %v", counts, want)
	}
	if w := send("sf-secret", "192.0.2.50"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("right secret while blocked: %d %s", w.Code, w.Body.String())
	}
	f.Clock.Advance(auth.DefaultFailuresPerKey.Block)
	if w := send("sf-secret", "192.0.2.50"); w.Code != http.StatusOK {
		t.Fatalf("right secret after the block: %d %s", w.Code, w.Body.String())
	}
}
