package connect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// TestConformance runs the API surface suite against the profile, mounted
// on the native server as lethe serves it.
func TestConformance(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		e := profiletest.OpenEnv(t, b)
		const limit = 5
		h, err := connect.New(connect.Options{
			Intake: e.Intake, Clients: e.Clients, Store: e.Store, Keyring: e.Keyring, Limiter: e.Limiter,
			Rules:    ratelimit.Rules{Default: ratelimit.Rule{Limit: limit, Window: time.Minute, Block: time.Minute}},
			Throttle: e.Throttle, Logger: e.Logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		handler := profiletest.Serve(t, e, profiletest.ServeOptions{Profiles: []httpapi.Profile{h}})
		c, err := e.Clients.Create(context.Background(), clients.CreateParams{Name: "conformance"})
		if err != nil {
			t.Fatal(err)
		}
		tr := httptest.NewRequest(http.MethodPost, connect.PathToken, strings.NewReader("grant_type=client_credentials"))
		tr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tr.SetBasicAuth(c.ClientID, c.ClientSecret)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, tr)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || w.Code != 200 {
			t.Fatalf("token: %d %s", w.Code, w.Body.String())
		}
		post := func(token string, body []byte) *http.Request {
			r := httptest.NewRequest(http.MethodPost, connect.PathDelete, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+token)
			return r
		}
		identifier := func(n int) []byte { return fmt.Appendf(nil, `{"identifier":"customer-%d@example.com"}`, n) }
		profiletest.Conformance(t, profiletest.Surface{
			Env:     e,
			Handler: handler,
			Valid:   func(t *testing.T, n int) *http.Request { return post(tok.AccessToken, identifier(n)) },
			BadAuth: func(t *testing.T, n int) *http.Request {
				return post(fmt.Sprintf("%064d", n), identifier(n))
			},
			WithBody:      func(t *testing.T, body []byte) *http.Request { return post(tok.AccessToken, body) },
			AuthStatus:    http.StatusUnauthorized,
			InvalidStatus: http.StatusBadRequest,
			Limit:         limit,
			MaxBodyBytes:  connect.DefaultMaxBodyBytes,
			UnknownPaths:  []string{"/v2/compliance", "/v2/compliance/customers/delete/", "/v2/compliance/customers/x/y"},
			Message:       profiletest.NativeMessage,
		})
	})
}
