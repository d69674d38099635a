package httprecipe_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/httprecipe"
)

const authRecipe = `
format: 1
name: authcheck
settings:
  user: {}
  pass: {secret: true}
  key: {secret: true}
  sign: {secret: true}
identities: {user_id: uid}
auth:
  - {type: basic, username: "{{settings.user}}", password: "{{settings.pass}}"}
  - {type: header, name: X-Api-Key, value: "{{settings.key}}"}
  - {type: query, name: api_key, value: "{{settings.key}}"}
  - {type: body, name: account, value: "{{settings.user}}"}
  - {type: hmac, header: X-Signature, prefix: "sha256=", digest: base64, secret: "{{settings.sign}}"}
erase:
  steps:
    - method: POST
      path: "/delete/{{value}}?mode=hard"
      body: {ids: "{{values}}", kind: "{{as}}", n: 3, dry: false}
      ok: [202]
`

// TestAuthSchemes: every static scheme of a recipe, checked by a server
// that computes what the vendor would (the HMAC over the exact bytes
// received, a body field added by auth included), not by lethe's code.
func TestAuthSchemes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var problems []string
	bad := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if u, p, ok := r.BasicAuth(); !ok || u != "acct" || p != "pw-0123456789" {
			bad("basic auth")
		}
		if r.Header.Get("X-Api-Key") != "key-0123456789" || r.URL.Query().Get("api_key") != "key-0123456789" || r.URL.Query().Get("mode") != "hard" {
			bad("key header or query")
		}
		if r.URL.EscapedPath() != "/delete/"+url.PathEscape("usr/../x y") {
			bad("path not escaped: " + r.URL.EscapedPath())
		}
		m := hmac.New(sha256.New, []byte("sign-0123456789"))
		m.Write(body)
		if r.Header.Get("X-Signature") != "sha256="+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
			bad("signature")
		}
		if string(body) != `{"ids":["usr/../x y"],"kind":"uid","n":3,"dry":false,"account":"acct"}` {
			bad("body " + string(body))
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	r, err := httprecipe.Parse([]byte(authRecipe), "recipe authcheck")
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, r, srv.URL, map[string]string{"user": "acct", "pass": "pw-0123456789", "key": "key-0123456789", "sign": "sign-0123456789"})
	s := connector.Subject{RequestID: "r", Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: "usr/../x y"}}}
	if _, err := c.Erase(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("the server saw: %v", problems)
	}
}

const oauthRecipe = `
format: 1
name: oauthcheck
settings:
  id: {}
  secret: {secret: true}
identities: {user_id: uid}
auth:
  - type: oauth2
    token_path: /token
    client_id: "{{settings.id}}"
    client_secret: "{{settings.secret}}"
    scope: deletions
    client_auth: basic
erase:
  steps:
    - {method: DELETE, path: "/users/{{value}}", ok: [204]}
`

// TestOAuth2Form: the client credentials grant as RFC 6749 writes it
// (form-encoded, client authentication by HTTP Basic), the token reused,
// and replaced before it expires on lethe's clock without a 401 first.
func TestOAuth2Form(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	tokens, deletes, refused := 0, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/token":
			u, p, ok := r.BasicAuth()
			if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.ParseForm() != nil || !ok ||
				u != "cid" || p != "csecret-0123456789" || r.PostForm.Get("grant_type") != "client_credentials" ||
				r.PostForm.Get("scope") != "deletions" || r.PostForm.Get("client_secret") != "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			tokens++
			json.NewEncoder(w).Encode(map[string]any{"access_token": "t" + string(rune('0'+tokens)), "expires_in": 3600, "token_type": "Bearer"})
		default:
			if r.Header.Get("Authorization") != "Bearer t"+string(rune('0'+tokens)) {
				refused++
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			deletes++
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	r, err := httprecipe.Parse([]byte(oauthRecipe), "recipe oauthcheck")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	c, err := httprecipe.New("t", r, httprecipe.Options{Settings: map[string]string{"id": "cid", "secret": "csecret-0123456789"},
		BaseURL: srv.URL, AllowHosts: []string{"127.0.0.1"}}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	s := connector.Subject{RequestID: "r", Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: "u-1"}}}
	for range 2 {
		if _, err := c.Erase(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(56 * time.Minute) // past 90% of the hour
	if _, err := c.Erase(ctx, s); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if tokens != 2 || deletes != 3 || refused != 0 {
		t.Errorf("%d tokens, %d deletes, %d refused; want 2, 3, 0", tokens, deletes, refused)
	}
}
