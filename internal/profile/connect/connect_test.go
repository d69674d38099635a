package connect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The contract's request body, verbatim (from its Java, Python and Go
// examples).
const seedBody = "{\n \"identifier\": \"string\"\n}"

type fixture struct {
	*profiletest.Env
	mux    *http.ServeMux
	client clients.Created
}

func newFixture(t *testing.T, b profiletest.Backend, rules ratelimit.Rules) *fixture {
	t.Helper()
	k := testdb.Keyring(t)
	s, _ := b.Open(t, k)
	e := profiletest.NewEnv(t, s, k, ratelimittest.NewClock())
	h, err := connect.New(connect.Options{
		Intake: e.Intake, Clients: e.Clients, Store: e.Store, Keyring: k,
		Limiter: e.Limiter, Rules: rules, Throttle: e.Throttle, Logger: e.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	c, err := e.Clients.Create(context.Background(), clients.CreateParams{Name: "storefront", ClientID: "sf-client", ClientSecret: "sf-secret"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{Env: e, mux: mux, client: c}
}

func (f *fixture) do(t *testing.T, method, target string, header map[string]string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "https://connect.example.com"+target, body)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

// api posts body as the contract's examples do, with token as the bearer.
func (f *fixture) api(t *testing.T, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	h := map[string]string{"Accept": "application/json", "Content-Type": "application/json"}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return f.do(t, http.MethodPost, path, h, strings.NewReader(body))
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	CreatedAt   int64  `json:"created_at"`
}

func (f *fixture) token(t *testing.T) string {
	t.Helper()
	w := f.api(t, connect.PathToken, "", `{"client_id":"sf-client","client_secret":"sf-secret","grant_type":"client_credentials","scope":"connect:compliance"}`)
	if w.Code != 200 {
		t.Fatalf("token: %d %s", w.Code, w.Body.String())
	}
	var a tokenAnswer
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatal(err)
	}
	want := tokenAnswer{AccessToken: a.AccessToken, TokenType: "Bearer", ExpiresIn: 86400, Scope: "connect:compliance", CreatedAt: f.Clock.Now().Unix()}
	if diff := cmp.Diff(want, a); diff != "" || len(a.AccessToken) != 64 {
		t.Fatalf("token answer (-want +got):\n%s", diff)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("token answer may be cached")
	}
	return a.AccessToken
}

func expect(t *testing.T, w *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if w.Code != status || w.Body.String() != body {
		t.Fatalf("answer %d %s, want %d %s", w.Code, w.Body.String(), status, body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// oauthErr is RFC 6749 5.2's error body, as the token endpoint answers.
func oauthErr(code, desc string) string {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	return string(b)
}

func errBody(code, msg string) string {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": msg}})
	return string(b)
}

// TestSeedExample replays the contract's examples byte for byte.
func TestSeedExample(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{})
		ctx := context.Background()
		tok := f.token(t)
		expect(t, f.api(t, connect.PathDelete, tok, seedBody), 200, `{"success": true}`)
		// The same customer again while the request is open.
		expect(t, f.api(t, connect.PathDelete, tok, seedBody), 200, `{"success": false}`)
		if n := profiletest.CountRequests(t, f.Store); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
		reqs, _, err := f.Store.ListRequests(ctx, store.ListFilter{Scope: store.Scope{ClientID: f.client.ID}, Limit: 10})
		if err != nil || len(reqs) != 1 || reqs[0].Regulation != lethe.CCPA {
			t.Fatalf("requests = %v, %v", reqs, err)
		}
		ids, err := f.Store.RequestIdentities(ctx, reqs[0].ID)
		if err != nil || len(ids) != 1 || ids[0] != (lethe.Identity{Type: lethe.IdentityUserID, Value: "string"}) {
			t.Fatalf("identities = %v, %v", ids, err)
		}
	})
}

func TestClassification(t *testing.T) {
	f := newFixture(t, profiletest.Backends()[0], ratelimit.Rules{})
	ctx := context.Background()
	tok := f.token(t)
	for _, tc := range []struct {
		identifier string
		want       lethe.Identity
	}{
		{" Jane.Doe@Example.COM ", lethe.Identity{Type: lethe.IdentityEmail, Value: "jane.doe@example.com"}},
		{"+49 151 1234-5678", lethe.Identity{Type: lethe.IdentityPhone, Value: "+4915112345678"}},
		{"cust_42", lethe.Identity{Type: lethe.IdentityUserID, Value: "cust_42"}},
	} {
		body, _ := json.Marshal(map[string]string{"identifier": tc.identifier})
		expect(t, f.api(t, connect.PathDelete, tok, string(body)), 200, `{"success": true}`)
		key := intakeKey(f, tc.want)
		got, err := f.Store.FindOpenRequest(ctx, f.client.ID, key)
		if err != nil {
			t.Errorf("%s: no open request for %v: %v", tc.want.Type, tc.want, err)
			continue
		}
		ids, _ := f.Store.RequestIdentities(ctx, got.ID)
		if len(ids) != 1 || ids[0] != tc.want {
			t.Errorf("stored %v, want %v", ids, tc.want)
		}
	}
	// The email in another case is the same customer.
	expect(t, f.api(t, connect.PathDelete, tok, `{"identifier":"jane.doe@example.com"}`), 200, `{"success": false}`)
}

func TestStatus(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{})
		ctx := context.Background()
		tok := f.token(t)
		for _, id := range []string{"done@example.com", "open", "canceled", "failed"} {
			expect(t, f.api(t, connect.PathDelete, tok, `{"identifier":"`+id+`"}`), 200, `{"success": true}`)
		}
		set := func(identity lethe.Identity, to lethe.Status, outcome lethe.Outcome) {
			t.Helper()
			r, err := f.Store.FindOpenRequest(ctx, f.client.ID, intakeKey(f, identity))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := f.Store.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, To: to, ToStage: lethe.StageDone, At: f.Clock.Now(), Outcome: outcome}); err != nil || !ok {
				t.Fatalf("set %s: %v %v", to, ok, err)
			}
		}
		set(lethe.Identity{Type: lethe.IdentityEmail, Value: "done@example.com"}, lethe.StatusCompleted, lethe.OutcomeNoMatch)
		set(lethe.Identity{Type: lethe.IdentityUserID, Value: "canceled"}, lethe.StatusCanceled, "")
		set(lethe.Identity{Type: lethe.IdentityUserID, Value: "failed"}, lethe.StatusFailed, lethe.OutcomeAmbiguousSubject)
		// An extended request says until when.
		open, err := f.Store.FindOpenRequest(ctx, f.client.ID, intakeKey(f, lethe.Identity{Type: lethe.IdentityUserID, Value: "open"}))
		if err != nil {
			t.Fatal(err)
		}
		until := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
		if ok, err := f.Store.ExtendRequest(ctx, store.Extension{RequestID: open.ID, PreviousDue: open.DueAt, Due: until, Reason: "r", Actor: lethe.ActorOperator, ActorID: "ana", At: f.Clock.Now()}); err != nil || !ok {
			t.Fatal(ok, err)
		}

		// Another client's request is invisible: not_found.
		other, err := f.Clients.Create(ctx, clients.CreateParams{Name: "other"})
		if err != nil {
			t.Fatal(err)
		}
		otherTok, err := f.Clients.IssueToken(ctx, other.ID, connect.Scope)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, f.api(t, connect.PathDelete, otherTok.Value, `{"identifier":"theirs"}`), 200, `{"success": true}`)

		w := f.api(t, connect.PathStatus, tok, `{"identifiers":["DONE@example.com","open","canceled","failed","never","theirs","open"]}`)
		want := `{"results":[` +
			`{"identifier":"DONE@example.com","status":"completed","outcome":"no_match"},` +
			`{"identifier":"open","status":"pending","extended_until":"2031-02-03T04:05:06Z"},` +
			`{"identifier":"canceled","status":"canceled"},` +
			`{"identifier":"failed","status":"failed","outcome":"ambiguous_subject"},` +
			`{"identifier":"never","status":"not_found"},` +
			`{"identifier":"theirs","status":"not_found"},` +
			`{"identifier":"open","status":"pending","extended_until":"2031-02-03T04:05:06Z"}],` +
			`"summary":{"total":7,"completed":1,"pending":2,"canceled":1,"failed":1,"not_found":2}}`
		expect(t, w, 200, want)

		// A new request after a completed one: the newest decides.
		expect(t, f.api(t, connect.PathDelete, tok, `{"identifier":"done@example.com"}`), 200, `{"success": true}`)
		expect(t, f.api(t, connect.PathStatus, tok, `{"identifiers":["done@example.com"]}`), 200,
			`{"results":[{"identifier":"done@example.com","status":"pending"}],"summary":{"total":1,"completed":0,"pending":1,"canceled":0,"failed":0,"not_found":0}}`)

		many := make([]string, 101)
		for i := range many {
			many[i] = fmt.Sprintf("u%d", i)
		}
		body, _ := json.Marshal(map[string][]string{"identifiers": many})
		expect(t, f.api(t, connect.PathStatus, tok, string(body)), 400, errBody("invalid_request", "identifiers may list at most 100 identifiers"))
		body, _ = json.Marshal(map[string][]string{"identifiers": many[:100]})
		if w := f.api(t, connect.PathStatus, tok, string(body)); w.Code != 200 {
			t.Fatalf("100 identifiers: %d", w.Code)
		}
		expect(t, f.api(t, connect.PathStatus, tok, `{"identifiers":[]}`), 400, errBody("invalid_request", "identifiers must list at least one identifier"))
		expect(t, f.api(t, connect.PathStatus, tok, `{"identifiers":["a",""]}`), 400, errBody("invalid_request", "identifiers[1] is missing"))
		expect(t, f.api(t, connect.PathStatus, tok, `{"identifiers":["a",null]}`), 400, errBody("invalid_request", "identifiers[1] is missing"))
		expect(t, f.api(t, connect.PathStatus, tok, `{"identifiers":"a"}`), 400, errBody("invalid_request", `member "identifiers" must be an array`))
	})
}

func TestTokenErrors(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{})
		tests := []struct {
			name   string
			target string
			ctype  string
			body   string
			status int
			want   string
		}{
			{"wrong secret", connect.PathToken, "application/json", `{"client_id":"sf-client","client_secret":"nope","grant_type":"client_credentials"}`, 401, oauthErr("invalid_client", "invalid client credentials")},
			{"unknown client", connect.PathToken, "application/json", `{"client_id":"nope","client_secret":"sf-secret","grant_type":"client_credentials"}`, 401, oauthErr("invalid_client", "invalid client credentials")},
			{"credentials in the query", connect.PathToken + "?client_id=sf-client&client_secret=sf-secret", "application/json", `{"grant_type":"client_credentials","client_id":"sf-client","client_secret":"sf-secret"}`, 400, oauthErr("invalid_request", "credentials must be sent in the request body or the Authorization header, never in the URL (rotate a secret that was)")},
			{"secret in the query", connect.PathToken + "?client_secret=x", "application/json", `{}`, 400, oauthErr("invalid_request", "credentials must be sent in the request body or the Authorization header, never in the URL (rotate a secret that was)")},
			{"grant type", connect.PathToken, "application/json", `{"client_id":"sf-client","client_secret":"sf-secret","grant_type":"password"}`, 400, oauthErr("unsupported_grant_type", `grant_type must be "client_credentials"`)},
			{"no grant type", connect.PathToken, "application/json", `{"client_id":"sf-client","client_secret":"sf-secret"}`, 400, oauthErr("invalid_request", "grant_type is missing")},
			{"no secret", connect.PathToken, "application/json", `{"client_id":"sf-client","grant_type":"client_credentials"}`, 400, oauthErr("invalid_request", "client_secret is missing")},
			{"scope", connect.PathToken, "application/json", `{"client_id":"sf-client","client_secret":"sf-secret","grant_type":"client_credentials","scope":"admin"}`, 400, oauthErr("invalid_scope", `scope may only be "connect:compliance"`)},
			{"form body, wrong grant", connect.PathToken, "application/x-www-form-urlencoded", `client_id=sf-client&client_secret=sf-secret&grant_type=password`, 400, oauthErr("unsupported_grant_type", `grant_type must be "client_credentials"`)},
			{"form body, repeated parameter", connect.PathToken, "application/x-www-form-urlencoded", `client_id=sf-client&client_secret=sf-secret&grant_type=client_credentials&grant_type=client_credentials`, 400, oauthErr("invalid_request", "request body has a parameter more than once")},
			{"other media type", connect.PathToken, "text/plain", `client_id=sf-client`, 415, oauthErr("invalid_request", "Content-Type must be application/x-www-form-urlencoded or application/json")},
			{"not JSON", connect.PathToken, "application/json", `client_id=sf-client`, 400, oauthErr("invalid_request", "request body is not valid JSON (at byte 1)")},
		}
		for _, tc := range tests {
			w := f.do(t, http.MethodPost, tc.target, map[string]string{"Content-Type": tc.ctype}, strings.NewReader(tc.body))
			if w.Code != tc.status || w.Body.String() != tc.want {
				t.Errorf("%s: %d %s, want %d %s", tc.name, w.Code, w.Body.String(), tc.status, tc.want)
			}
		}
		// Omitted scope is fine; the granted one is reported.
		w := f.api(t, connect.PathToken, "", `{"client_id":"sf-client","client_secret":"sf-secret","grant_type":"client_credentials"}`)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"scope":"connect:compliance"`) {
			t.Fatalf("no scope: %d %s", w.Code, w.Body.String())
		}
	})
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestDeleteErrors(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{})
		tok := f.token(t)
		unauth := func(w *httptest.ResponseRecorder, msg string) {
			t.Helper()
			expect(t, w, 401, errBody("unauthorized", msg))
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		}
		unauth(f.api(t, connect.PathDelete, "", seedBody), "missing bearer token")
		unauth(f.api(t, connect.PathDelete, "not-a-token", seedBody), "invalid or expired bearer token")
		unauth(f.api(t, connect.PathStatus, "", `{"identifiers":["a"]}`), "missing bearer token")

		for _, tc := range []struct{ name, body, want string }{
			{"no identifier", `{}`, "identifier is missing"},
			{"null identifier", `{"identifier":null}`, "identifier is missing"},
			{"empty identifier", `{"identifier":""}`, "identifier is missing"},
			{"number", `{"identifier":42}`, `member "identifier" must be a string`},
			{"too long", `{"identifier":"` + strings.Repeat("x", 10<<10) + `"}`, "identifier is longer than 256 bytes"},
			{"control character", `{"identifier":"a\u0007b"}`, "identifier contains control characters"},
			{"duplicate keys", `{"identifier":"a","identifier":"b"}`, `request body has a member more than once`},
			{"invalid UTF-8", "{\"identifier\":\"\xc3\x28\"}", "request body is not valid UTF-8"},
			{"unknown member", `{"identifier":"a","reason":"x"}`, `request body has a member this endpoint does not accept`},
			{"not JSON", `identifier=a`, "request body is not valid JSON (at byte 1)"},
		} {
			w := f.api(t, connect.PathDelete, tok, tc.body)
			if want := errBody("invalid_request", tc.want); w.Code != 400 || w.Body.String() != want {
				t.Errorf("%s: %d %s, want 400 %s", tc.name, w.Code, w.Body.String(), want)
			}
		}
		w := f.do(t, http.MethodPost, connect.PathDelete, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"}, strings.NewReader(seedBody))
		expect(t, w, 415, errBody("unsupported_media_type", "Content-Type must be application/json"))
		w = f.do(t, http.MethodPost, connect.PathDelete+"?access_token="+tok, map[string]string{"Content-Type": "application/json"}, strings.NewReader(seedBody))
		if w.Code != 403 {
			t.Fatalf("token in the URL: %d", w.Code)
		}
		w = f.do(t, http.MethodGet, connect.PathDelete, nil, nil)
		expect(t, w, 405, errBody("method_not_allowed", "method not allowed; use POST"))

		// 1 MiB declared: refused without reading it.
		big := `{"identifier":"` + strings.Repeat("x", 1<<20) + `"}`
		cr := &countingReader{r: strings.NewReader(big)}
		r := httptest.NewRequest(http.MethodPost, connect.PathDelete, cr)
		r.ContentLength = int64(len(big))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/json")
		w = httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		expect(t, w, 413, errBody("payload_too_large", "request body is larger than 65536 bytes"))
		if cr.n.Load() != 0 {
			t.Fatalf("read %d bytes of a declared 1 MiB body", cr.n.Load())
		}

		// An expired token.
		f.Clock.Advance(24 * time.Hour)
		unauth(f.api(t, connect.PathDelete, tok, seedBody), "invalid or expired bearer token")

		if n := profiletest.CountRequests(t, f.Store); n != 0 {
			t.Fatalf("bad input stored %d requests", n)
		}
	})
}

func TestRateLimit(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newFixture(t, b, ratelimit.Rules{Default: ratelimit.Rule{Limit: 5, Window: time.Minute}})
		tok := f.token(t) // counts as one
		for i := 0; i < 4; i++ {
			expect(t, f.api(t, connect.PathDelete, tok, fmt.Sprintf(`{"identifier":"u%d"}`, i)), 200, `{"success": true}`)
		}
		f.Clock.Advance(15 * time.Second)
		w := f.api(t, connect.PathDelete, tok, `{"identifier":"u9"}`)
		expect(t, w, 429, errBody("rate_limited", "too many requests; retry later"))
		if got := w.Header().Get("Retry-After"); got != "45" {
			t.Fatalf("Retry-After %q, want 45", got)
		}
		f.Clock.Advance(45 * time.Second)
		expect(t, f.api(t, connect.PathDelete, tok, `{"identifier":"u9"}`), 200, `{"success": true}`)
	})
}

func intakeKey(f *fixture, id lethe.Identity) string {
	return intake.SubjectKey(f.Keyring, []lethe.Identity{id})
}
