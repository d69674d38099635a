package s2s_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The contract's example, verbatim.
const (
	seedAPIKey    = "00000000-1111-2222-3333-444444444444"
	seedSecret    = "foobar"
	seedBody      = `{"user_id":"12345"}`
	seedSignature = "06d2310b2fd4576c7287a7be99e2450a12e0fc1f4d62b1f1ef54aa3a38836677"
)

type fixture struct {
	*profiletest.Env
	mux    *http.ServeMux
	client clients.Created
}

func newFixture(t *testing.T, s store.Store, k *seal.Keyring, clock *ratelimittest.Clock, rules ratelimit.Rules) *fixture {
	t.Helper()
	e := profiletest.NewEnv(t, s, k, clock)
	h, err := s2s.New(s2s.Options{Intake: e.Intake, Clients: e.Clients, Limiter: e.Limiter, Rules: rules, Throttle: e.Throttle, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	return &fixture{Env: e, mux: mux}
}

// newSeeded returns a fixture whose client has the contract's API key and
// secret, created through clients.Create.
func newSeeded(t *testing.T, b profiletest.Backend) *fixture {
	t.Helper()
	k := testdb.Keyring(t)
	s, _ := b.Open(t, k)
	f := newFixture(t, s, k, ratelimittest.NewClock(), ratelimit.Rules{})
	c, err := f.Clients.Create(context.Background(), clients.CreateParams{Name: "purchasely", APIKey: seedAPIKey, Secret: seedSecret})
	if err != nil {
		t.Fatal(err)
	}
	f.client = c
	return f
}

// post sends body with the contract's headers; sig "" omits Authorization
// and key "" omits X-API-KEY.
func (f *fixture) post(t *testing.T, key, sig, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "https://s2s.example.com/user_deletion_requests", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("X-API-KEY", key)
	}
	if sig != "" {
		r.Header.Set("Authorization", sig)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

// signed posts body signed with the contract's secret.
func (f *fixture) signed(t *testing.T, body string) *httptest.ResponseRecorder {
	t.Helper()
	return f.post(t, seedAPIKey, s2s.Sign([]byte(body), []byte(seedSecret)), body)
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

var idBody = regexp.MustCompile(`^\{ "id": "([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})" \}$`)

func acceptedID(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	m := idBody.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("answer %d %s, want 200 { \"id\": \"<uuid>\" }", w.Code, w.Body.String())
	}
	return m[1]
}

func TestSignatureVector(t *testing.T) {
	if got := s2s.Sign([]byte(seedBody), []byte(seedSecret)); got != seedSignature {
		t.Fatalf("Sign = %s, want the contract's %s", got, seedSignature)
	}
	secrets := [][]byte{[]byte("other"), []byte(seedSecret)}
	for sig, want := range map[string]bool{
		seedSignature:                  true,
		strings.ToUpper(seedSignature): true, // decided: either case
		seedSignature[:63]:             false,
		seedSignature + "0":            false,
		"sha256=" + seedSignature:      false,
		" " + seedSignature[1:]:        false,
		strings.Repeat("0", 64):        false,
		"":                             false,
	} {
		if got := s2s.VerifySignature([]byte(seedBody), sig, secrets); got != want {
			t.Errorf("VerifySignature(%q) = %v, want %v", sig, got, want)
		}
	}
	if s2s.VerifySignature([]byte(seedBody), seedSignature, nil) {
		t.Error("verified without secrets")
	}
	if s2s.VerifySignature([]byte(seedBody+" "), seedSignature, secrets) {
		t.Error("verified a different body")
	}
}

// TestSeedExample replays the contract's request byte for byte.
func TestSeedExample(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newSeeded(t, b)
		ctx := context.Background()
		w := f.post(t, seedAPIKey, seedSignature, seedBody)
		id := acceptedID(t, w)
		r, err := f.Store.GetRequest(ctx, id, store.Scope{ClientID: f.client.ID})
		if err != nil {
			t.Fatalf("the returned id is not the client's request: %v", err)
		}
		if r.Status != lethe.StatusReceived || r.Regulation != lethe.GDPR {
			t.Fatalf("request %+v", r)
		}
		ids, err := f.Store.RequestIdentities(ctx, id)
		if err != nil || len(ids) != 1 || ids[0] != (lethe.Identity{Type: lethe.IdentityUserID, Value: "12345"}) {
			t.Fatalf("identities = %v, %v", ids, err)
		}

		// The same user again while the request is open: the same id,
		// nothing new stored.
		if again := acceptedID(t, f.post(t, seedAPIKey, seedSignature, seedBody)); again != id {
			t.Fatalf("duplicate answered %s, want %s", again, id)
		}
		if n := profiletest.CountRequests(t, f.Store); n != 1 {
			t.Fatalf("%d requests stored, want 1", n)
		}
		// Once it has ended, a new request is made.
		if ok, err := f.Store.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: id, From: []lethe.Status{lethe.StatusReceived}, To: lethe.StatusCompleted, ToStage: lethe.StageDone, At: f.Clock.Now()}); err != nil || !ok {
			t.Fatalf("complete: %v %v", ok, err)
		}
		if next := acceptedID(t, f.post(t, seedAPIKey, seedSignature, seedBody)); next == id {
			t.Fatal("a request after completion got the old id")
		}

		// The contract's two error examples.
		expect(t, f.post(t, seedAPIKey, "", seedBody), 403, `{ "errors": ["Missing signature"] }`)
		expect(t, f.signed(t, `{}`), 422, `{ "errors": ["user_id is missing"] }`)
	})
}

// countingReader counts the bytes the handler reads.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestBadInput(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newSeeded(t, b)
		ctx := context.Background()
		other, err := f.Clients.Create(ctx, clients.CreateParams{Name: "disabled", Secret: seedSecret})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Clients.Disable(ctx, "disabled"); err != nil {
			t.Fatal(err)
		}
		const invalid = `{ "errors": ["Invalid API key or signature"] }`
		long := strings.Repeat("x", 10<<10)
		tests := []struct {
			name     string
			key, sig string
			body     string
			status   int
			want     string
		}{
			{"one byte different from the signed body", seedAPIKey, seedSignature, `{"user_id":"12346"}`, 403, invalid},
			{"signature of another secret", seedAPIKey, s2s.Sign([]byte(seedBody), []byte("foobaz")), seedBody, 403, invalid},
			{"signature with prefix", seedAPIKey, "sha256=" + seedSignature, seedBody, 403, invalid},
			{"signature truncated", seedAPIKey, seedSignature[:63], seedBody, 403, invalid},
			{"signature not hex", seedAPIKey, strings.Repeat("g", 64), seedBody, 403, invalid},
			{"unknown API key", "00000000-1111-2222-3333-444444444445", seedSignature, seedBody, 403, invalid},
			{"no API key", "", seedSignature, seedBody, 403, invalid},
			{"disabled client", other.APIKey, seedSignature, seedBody, 403, invalid},
			{"no signature, unknown key", "nope", "", seedBody, 403, `{ "errors": ["Missing signature"] }`},
			{"non-JSON body", seedAPIKey, "", `user_id=12345`, 422, `{ "errors": ["request body is not valid JSON (at byte 1)"] }`},
			{"empty body", seedAPIKey, "", ``, 422, `{ "errors": ["request body is required (a JSON object)"] }`},
			{"array body", seedAPIKey, "", `["12345"]`, 422, `{ "errors": ["request body must be a JSON object"] }`},
			{"user_id a number", seedAPIKey, "", `{"user_id":12345}`, 422, `{ "errors": ["user_id must be a string"] }`},
			{"user_id an object", seedAPIKey, "", `{"user_id":{"id":"1"}}`, 422, `{ "errors": ["user_id must be a string"] }`},
			{"user_id null", seedAPIKey, "", `{"user_id":null}`, 422, `{ "errors": ["user_id is missing"] }`},
			{"user_id empty", seedAPIKey, "", `{"user_id":""}`, 422, `{ "errors": ["user_id is missing"] }`},
			{"user_id blank", seedAPIKey, "", `{"user_id":"  "}`, 422, `{ "errors": ["user_id is missing"] }`},
			{"user_id 10 KB", seedAPIKey, "", `{"user_id":"` + long + `"}`, 422, `{ "errors": ["user_id is longer than 256 bytes"] }`},
			{"user_id control character", seedAPIKey, "", `{"user_id":"12\u000045"}`, 422, `{ "errors": ["user_id contains control characters"] }`},
			{"duplicate keys", seedAPIKey, "", `{"user_id":"1","user_id":"2"}`, 422, `{ "errors": ["request body has a member more than once"] }`},
			{"duplicate keys differing in case", seedAPIKey, "", `{"user_id":"1","USER_ID":"2"}`, 422, `{ "errors": ["request body has a member more than once"] }`},
			{"invalid UTF-8", seedAPIKey, "", "{\"user_id\":\"12\xff45\"}", 422, `{ "errors": ["request body is not valid UTF-8"] }`},
			{"unknown member", seedAPIKey, "", `{"user_id":"1","email":"a@b.c"}`, 422, `{ "errors": ["request body has a member this endpoint does not accept"] }`},
			{"trailing data", seedAPIKey, "", `{"user_id":"1"}{}`, 422, `{ "errors": ["request body has data after the JSON object"] }`},
		}
		for _, tc := range tests {
			sig := tc.sig
			if sig == "" && tc.status == 422 {
				// A valid signature: the body reaches validation.
				sig = s2s.Sign([]byte(tc.body), []byte(seedSecret))
			}
			w := f.post(t, tc.key, sig, tc.body)
			if w.Code != tc.status || w.Body.String() != tc.want {
				t.Errorf("%s: answer %d %s, want %d %s", tc.name, w.Code, w.Body.String(), tc.status, tc.want)
			}
		}

		// 1 MiB, declared: refused before reading a byte.
		big := `{"user_id":"` + strings.Repeat("x", 1<<20) + `"}`
		cr := &countingReader{r: strings.NewReader(big)}
		r := httptest.NewRequest(http.MethodPost, "/user_deletion_requests", cr)
		r.ContentLength = int64(len(big))
		r.Header.Set("X-API-KEY", seedAPIKey)
		r.Header.Set("Authorization", s2s.Sign([]byte(big), []byte(seedSecret)))
		w := httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		expect(t, w, 413, `{ "errors": ["Request body is larger than 65536 bytes"] }`)
		if cr.n.Load() != 0 {
			t.Errorf("read %d bytes of a declared 1 MiB body, want 0", cr.n.Load())
		}
		// Undeclared (chunked): refused at the limit, not read to the end.
		cr = &countingReader{r: strings.NewReader(big)}
		r = httptest.NewRequest(http.MethodPost, "/user_deletion_requests", cr)
		r.ContentLength = -1
		r.Header.Set("X-API-KEY", seedAPIKey)
		r.Header.Set("Authorization", s2s.Sign([]byte(big), []byte(seedSecret)))
		w = httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		expect(t, w, 413, `{ "errors": ["Request body is larger than 65536 bytes"] }`)
		if n := cr.n.Load(); n > s2s.DefaultMaxBodyBytes+64<<10 {
			t.Errorf("read %d bytes of an undeclared 1 MiB body, want about the limit", n)
		}

		// Other methods: 405 in the profile's shape.
		r = httptest.NewRequest(http.MethodGet, "/user_deletion_requests", nil)
		w = httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		expect(t, w, 405, `{ "errors": ["Method not allowed"] }`)

		if n := profiletest.CountRequests(t, f.Store); n != 0 {
			t.Fatalf("bad input stored %d requests, want 0", n)
		}

		// Decided: an upper-case hex signature is the same MAC; accepted.
		acceptedID(t, f.post(t, seedAPIKey, strings.ToUpper(seedSignature), seedBody))
	})
}

func TestRotatedSecretOverlap(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newSeeded(t, b)
		rot, err := f.Clients.RotateSecret(context.Background(), "purchasely", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		newSig := s2s.Sign([]byte(seedBody), []byte(rot.Secret))
		f.Clock.Advance(24*time.Hour - time.Second)
		id := acceptedID(t, f.post(t, seedAPIKey, seedSignature, seedBody)) // old secret, within overlap
		if got := acceptedID(t, f.post(t, seedAPIKey, newSig, seedBody)); got != id {
			t.Fatalf("new secret: id %s, want the open request %s", got, id)
		}
		f.Clock.Advance(time.Second)
		expect(t, f.post(t, seedAPIKey, seedSignature, seedBody), 403, `{ "errors": ["Invalid API key or signature"] }`)
		acceptedID(t, f.post(t, seedAPIKey, newSig, seedBody))
	})
}

func TestRateLimit(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		f := newSeeded(t, b)
		// Unauthenticated requests are not counted: a stranger who knows
		// the key cannot use up its owner's allowance. (Below the failed
		// sign-in throttle, which has its own test.)
		for i := 0; i < auth.DefaultFailuresPerKey.Failures-1; i++ {
			f.post(t, seedAPIKey, strings.Repeat("0", 64), seedBody)
		}
		// 50 a window, duplicates and bad bodies included.
		for i := 0; i < 50; i++ {
			body := `{"user_id":"u` + strconv.Itoa(i%10) + `"}`
			if i == 7 {
				body = `{}`
			}
			w := f.signed(t, body)
			if w.Code != 200 && !(i == 7 && w.Code == 422) {
				t.Fatalf("request %d: %d %s", i+1, w.Code, w.Body.String())
			}
			f.Clock.Advance(time.Second)
		}
		tooMany := func(retry string) {
			t.Helper()
			w := f.post(t, seedAPIKey, seedSignature, seedBody)
			expect(t, w, 429, `{ "errors": ["Too many requests"] }`)
			if got := w.Header().Get("Retry-After"); got != retry {
				t.Fatalf("Retry-After %s, want %s", got, retry)
			}
		}
		tooMany("600") // the 51st blocks for 10 minutes from now
		for i := 1; i < 10; i++ {
			f.Clock.Advance(time.Minute)
			tooMany(strconv.Itoa(600 - 60*i)) // refused, and the block is not extended
		}
		f.Clock.Advance(time.Minute - time.Second)
		tooMany("1")
		f.Clock.Advance(time.Second)
		acceptedID(t, f.post(t, seedAPIKey, seedSignature, seedBody))
		if n := profiletest.CountRequests(t, f.Store); n != 11 {
			t.Fatalf("%d requests stored, want 11", n)
		}
	})
}

func TestRateLimitPerClientOverride(t *testing.T) {
	k := testdb.Keyring(t)
	s, _ := profiletest.Backends()[0].Open(t, k)
	clock := ratelimittest.NewClock()
	probe := profiletest.NewEnv(t, s, k, clock)
	ctx := context.Background()
	small, err := probe.Clients.Create(ctx, clients.CreateParams{Name: "small", Secret: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	big, err := probe.Clients.Create(ctx, clients.CreateParams{Name: "big", Secret: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, s, k, clock, ratelimit.Rules{PerClient: map[string]ratelimit.Rule{
		small.ID: {Limit: 2, Window: time.Hour, Block: time.Hour},
	}})
	codes := func(c clients.Created, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			out = append(out, f.post(t, c.APIKey, s2s.Sign([]byte(seedBody), []byte(c.Secret)), seedBody).Code)
		}
		return out
	}
	if got := codes(small, 3); got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Fatalf("small client: %v, want 200 200 429", got)
	}
	for i, c := range codes(big, 50) {
		if c != 200 {
			t.Fatalf("big client request %d: %d", i+1, c)
		}
	}
}

// TestSharedLimit runs two lethe instances, each with its own connection
// pool, on one database: the limit is 50 across both.
func TestSharedLimit(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		k := testdb.Keyring(t)
		s1, another := b.Open(t, k)
		s2 := another()
		clock := ratelimittest.NewClock()
		f1 := newFixture(t, s1, k, clock, ratelimit.Rules{})
		f2 := newFixture(t, s2, k, clock, ratelimit.Rules{})
		if _, err := f1.Clients.Create(context.Background(), clients.CreateParams{Name: "p", APIKey: seedAPIKey, Secret: seedSecret}); err != nil {
			t.Fatal(err)
		}
		var id string
		for i := 0; i < 50; i++ {
			f := f1
			if i%2 == 1 {
				f = f2
			}
			got := acceptedID(t, f.post(t, seedAPIKey, seedSignature, seedBody))
			if id != "" && got != id {
				t.Fatalf("instance %d answered another id for the duplicate", i%2+1)
			}
			id = got
		}
		for _, f := range []*fixture{f1, f2} {
			if w := f.post(t, seedAPIKey, seedSignature, seedBody); w.Code != 429 {
				t.Fatalf("51st: %d %s, want 429", w.Code, w.Body.String())
			}
		}
		clock.Advance(10 * time.Minute)
		acceptedID(t, f2.post(t, seedAPIKey, seedSignature, seedBody))
	})
}

// TestCachedKeyChangeAnswersAsRead: with the key's lookup cached, a
// disable, an enable or a rotation made by another process decides the
// very next request, whatever its answer: a valid request of a disabled
// client is refused and not stored, and counts nothing against its rate
// limit; a bad body of a disabled client is refused as a disabled
// client's; a new secret signs at once and the old one no more.
func TestCachedKeyChangeAnswersAsRead(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		k := testdb.Keyring(t)
		s, another := b.Open(t, k)
		clock := ratelimittest.NewClock()
		f := newFixture(t, s, k, clock, ratelimit.Rules{Default: ratelimit.Rule{Limit: 3, Window: time.Hour}})
		there, err := clients.New(another(), k, clients.Config{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := there.Create(ctx, clients.CreateParams{Name: "partner", APIKey: seedAPIKey, Secret: seedSecret}); err != nil {
			t.Fatal(err)
		}
		const invalid = `{ "errors": ["Invalid API key or signature"] }`
		body := func(i int) string { return `{"user_id":"u` + strconv.Itoa(i) + `"}` }

		acceptedID(t, f.signed(t, body(1))) // cached from here on
		if err := there.Disable(ctx, "partner"); err != nil {
			t.Fatal(err)
		}
		expect(t, f.signed(t, body(2)), 403, invalid)
		expect(t, f.post(t, seedAPIKey, s2s.Sign([]byte(`{}`), []byte(seedSecret)), `{}`), 403, invalid)
		if n := profiletest.CountRequests(t, f.Store); n != 1 {
			t.Fatalf("%d requests stored, want only the one before the disable", n)
		}
		if err := there.Enable(ctx, "partner"); err != nil {
			t.Fatal(err)
		}
		acceptedID(t, f.signed(t, body(3)))

		rot, err := there.RotateSecret(ctx, "partner", 0)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, f.signed(t, body(4)), 403, invalid) // the old secret
		acceptedID(t, f.post(t, seedAPIKey, s2s.Sign([]byte(body(5)), []byte(rot.Secret)), body(5)))

		// The limit (3) is spent: a disabled client is refused as such,
		// not as over its limit.
		w := f.post(t, seedAPIKey, s2s.Sign([]byte(body(6)), []byte(rot.Secret)), body(6))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("over the limit: %d %s, want 429", w.Code, w.Body)
		}
		if err := there.Disable(ctx, "partner"); err != nil {
			t.Fatal(err)
		}
		expect(t, f.post(t, seedAPIKey, s2s.Sign([]byte(body(7)), []byte(rot.Secret)), body(7)), 403, invalid)
		if n := profiletest.CountRequests(t, f.Store); n != 3 {
			t.Fatalf("%d requests stored, want 3", n)
		}
	})
}
