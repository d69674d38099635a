package pipeline

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/netguard"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

const (
	clientSecret = "client-shared-secret"
	adminSecret  = "deployment-callback-secret"
)

// callbackConfig is testConfig with callback retries in milliseconds.
func callbackConfig() Config {
	cfg := testConfig()
	cfg.Callbacks = CallbackConfig{
		BackoffBase: 10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
		AdminSecret: adminSecret,
		Guard:       loopbackGuard,
	}
	return cfg
}

// loopbackGuard lets deliveries reach the test's loopback receivers, which
// the default guard refuses.
var loopbackGuard, _ = netguard.New([]string{"127.0.0.1", "::1"})

// receiver is a callback endpoint that records what it gets and answers
// with status(n) for the n-th (1-based) delivery of an event.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	status func(n int) int
	onHit  func()

	mu    sync.Mutex
	got   []delivery
	perID map[string]int
}

type delivery struct {
	eventID string
	sig     string
	body    []byte
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{t: t, status: status, perID: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		id := req.Header.Get("X-Lethe-Event-Id")
		r.got = append(r.got, delivery{eventID: id, sig: req.Header.Get("X-Lethe-Signature"), body: body})
		r.perID[id]++
		n := r.perID[id]
		r.mu.Unlock()
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("callback is %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
		}
		if r.onHit != nil {
			r.onHit()
		}
		w.WriteHeader(r.status(n))
		fmt.Fprint(w, "receiver says something that must not be stored")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func always(status int) func(int) int { return func(int) int { return status } }

// verifySignature is what a receiver does (docs/callbacks.md), written
// independently of SignCallback.
func verifySignature(header string, body []byte, secret string) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// newClientWithSecret stores a client whose HMAC shared secret is secret.
func newClientWithSecret(t *testing.T, st store.Store, secret string) string {
	t.Helper()
	c := &lethe.Client{ID: uuid.NewString(), Name: "partner-" + randomHex(4), CreatedAt: time.Now()}
	err := st.CreateClient(context.Background(), c, []store.Credential{
		{ClientID: c.ID, Kind: store.CredHMACSecret, Secret: secret, CreatedAt: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// submitWithCallback submits like intake does, with a client and a
// callback URL.
func submitWithCallback(t *testing.T, st store.Store, p *Pipeline, clientID, callbackURL string, ids ...lethe.Identity) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{
		ID:          uuid.Must(uuid.NewV7()).String(),
		ClientID:    clientID,
		ExternalID:  "ticket-77",
		Regulation:  lethe.GDPR,
		Status:      lethe.StatusReceived,
		Stage:       lethe.StageResolve,
		Identities:  ids,
		SubjectKey:  randomHex(16),
		CallbackURL: callbackURL,
		ReceivedAt:  now,
		DueAt:       now.Add(lethe.DefaultDeadlines[lethe.GDPR]),
		UpdatedAt:   now,
	}
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		return p.EnqueueResolve(ctx, tx, r.ID)
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return r.ID
}

// waitCallbacks waits until the request has n callback events and none is
// pending, and returns them.
func waitCallbacks(t *testing.T, st store.Store, requestID string, n int) []store.CallbackEvent {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		es, err := st.ListCallbackEvents(context.Background(), requestID)
		if err != nil {
			t.Fatal(err)
		}
		settled := len(es) == n
		for _, e := range es {
			settled = settled && e.State != store.CallbackPending
		}
		if settled {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks of %s not settled after %s: %+v", requestID, waitTimeout, es)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type bodyView struct {
	ID         string        `json:"id"`
	Type       string        `json:"type"`
	Sequence   int           `json:"sequence"`
	RequestID  string        `json:"request_id"`
	ExternalID string        `json:"external_id"`
	Status     lethe.Status  `json:"status"`
	Outcome    lethe.Outcome `json:"outcome"`
	Tasks      struct {
		Total, Done, Failed int
	} `json:"tasks"`
	Targets []map[string]any `json:"targets"`
}

// checkDeliveries checks what the receiver got: one delivery per event
// in order, signed with secret, ids matching, no identity values.
func checkDeliveries(t *testing.T, got []delivery, requestID, secret string, want ...lethe.Status) []bodyView {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("receiver got %d deliveries, want %d", len(got), len(want))
	}
	// Delivery order is not guaranteed (docs/callbacks.md); the sequence
	// in the body is what orders events.
	seqOf := func(d delivery) int {
		var b struct{ Sequence int }
		_ = json.Unmarshal(d.body, &b)
		return b.Sequence
	}
	slices.SortFunc(got, func(a, b delivery) int { return seqOf(a) - seqOf(b) })
	var out []bodyView
	for i, d := range got {
		if !verifySignature(d.sig, d.body, secret) {
			t.Errorf("delivery %d: signature %q does not verify", i, d.sig)
		}
		var b bodyView
		if err := json.Unmarshal(d.body, &b); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if b.ID != d.eventID || b.RequestID != requestID || b.Status != want[i] || b.Sequence != i+1 ||
			b.Type != CallbackEventType || b.ExternalID != "ticket-77" {
			t.Errorf("delivery %d: header id %s, body %+v; want status %s, sequence %d", i, d.eventID, b, want[i], i+1)
		}
		assertNoValue(t, "callback body", string(d.body), email)
		out = append(out, b)
	}
	return out
}

func TestCallbacksRunningAndCompleted(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		rcv := newReceiver(t, always(http.StatusNoContent))
		target := newMemTarget()
		target.put(email, 3)
		p := start(t, st, callbackConfig(), Target{"shop", target})
		client := newClientWithSecret(t, st, clientSecret)
		id := submitWithCallback(t, st, p, client, rcv.srv.URL+"/hooks/lethe", email)
		waitDone(t, st, id, lethe.StatusCompleted)
		es := waitCallbacks(t, st, id, 2)

		bodies := checkDeliveries(t, rcv.deliveries(), id, clientSecret, lethe.StatusRunning, lethe.StatusCompleted)
		// Per target: state and outcome, never a row count (it tells a
		// partner what the company held on the person).
		want := []map[string]any{{"target": "shop", "state": "done", "outcome": "erased"}}
		if b := bodies[1]; b.Tasks.Total != 1 || b.Tasks.Done != 1 || !cmp.Equal(b.Targets, want) {
			t.Errorf("completed body: %+v, targets %v; want %v", b, b.Targets, want)
		}
		// While running: no outcome yet, and no count either.
		for _, tg := range bodies[0].Targets {
			if _, ok := tg["outcome"]; ok || len(tg) != 2 {
				t.Errorf("running body target %v, want target and state only", tg)
			}
		}
		if bodies[0].Outcome != "" || bodies[1].Outcome != lethe.OutcomeErased {
			t.Errorf("outcomes: running %q, completed %q; want none, then erased", bodies[0].Outcome, bodies[1].Outcome)
		}
		for _, e := range es {
			if e.State != store.CallbackDelivered || len(e.Attempts) != 1 || e.Attempts[0].HTTPStatus != http.StatusNoContent || e.Attempts[0].Error != "" {
				t.Errorf("event %d: state %s attempts %+v, want delivered at the first attempt", e.Seq, e.State, e.Attempts)
			}
		}
		// Attempts keep no response body.
		for _, row := range queryStrings(t, st, `SELECT error FROM callback_attempts`, `SELECT error FROM callback_attempts`) {
			if strings.Contains(row, "receiver says") {
				t.Errorf("a response body was stored: %q", row)
			}
		}
		// Delivered and closed, the URL is kept nowhere: not by the
		// request (dropped at minimisation), not by its events.
		urls := queryStrings(t, st, `SELECT url FROM callback_events`, `SELECT url FROM callback_events`)
		urls = append(urls, queryStrings(t, st, `SELECT callback_url FROM requests`, `SELECT callback_url FROM requests`)...)
		if len(urls) != 3 {
			t.Errorf("read %d urls, want the request's and two events'", len(urls))
		}
		for _, u := range urls {
			if u != "" {
				t.Errorf("a callback url is kept after delivery: %q", u)
			}
		}
	})
}

func TestCallbackFailedRequestSignedWithAdminSecret(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		rcv := newReceiver(t, always(http.StatusOK))
		broken := newMemTarget()
		broken.resolveErr = connector.Permanent(fmt.Errorf("lookup of %s failed", email.Value))
		p := start(t, st, callbackConfig(), Target{"broken", broken})
		id := submitWithCallback(t, st, p, "", rcv.srv.URL, email)
		waitDone(t, st, id, lethe.StatusFailed)
		waitCallbacks(t, st, id, 1)
		checkDeliveries(t, rcv.deliveries(), id, adminSecret, lethe.StatusFailed)
	})
}

func TestCallbackCanceled(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		rcv := newReceiver(t, always(http.StatusAccepted))
		p := build(t, st, callbackConfig(), Target{"t", newMemTarget()})
		keys := testdb.Keyring(t)
		in := intake.New(st, p, keys, intake.Config{Terminator: p, CallbackURLs: netguard.CallbackURLs{Guard: loopbackGuard}})
		client := newClientWithSecret(t, st, clientSecret)
		req, _, err := in.Submit(ctx, intake.Submission{
			Actor: lethe.ActorClient, ClientID: client, Identities: []lethe.Identity{email},
			ExternalID: "ticket-77", CallbackURL: rcv.srv.URL,
		})
		if err != nil {
			t.Fatal(err)
		}
		// Canceled before any worker runs, so resolve finds it canceled.
		if _, err := in.Cancel(ctx, store.Scope{ClientID: client}, req.ID, lethe.ActorClient, client); err != nil {
			t.Fatal(err)
		}
		startBuilt(t, p)
		waitCallbacks(t, st, req.ID, 1)
		waitIdle(t, p)
		checkDeliveries(t, rcv.deliveries(), req.ID, clientSecret, lethe.StatusCanceled)
	})
}

func TestCallbackRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		// Fails every event twice, then takes it.
		rcv := newReceiver(t, func(n int) int {
			if n <= 2 {
				return http.StatusBadGateway
			}
			return http.StatusOK
		})
		p := start(t, st, callbackConfig(), Target{"t", newMemTarget()})
		client := newClientWithSecret(t, st, clientSecret)
		id := submitWithCallback(t, st, p, client, rcv.srv.URL, email)
		waitDone(t, st, id, lethe.StatusCompleted)
		es := waitCallbacks(t, st, id, 2)

		type attempt struct {
			Status int
			Error  string
		}
		var got [][]attempt
		for _, e := range es {
			if e.State != store.CallbackDelivered {
				t.Errorf("event %d is %s, want delivered", e.Seq, e.State)
			}
			var as []attempt
			for i, a := range e.Attempts {
				if a.Attempt != i+1 || a.Time.IsZero() || a.Duration <= 0 {
					t.Errorf("event %d attempt %d: %+v", e.Seq, i+1, a)
				}
				as = append(as, attempt{a.HTTPStatus, a.Error})
			}
			got = append(got, as)
		}
		three := []attempt{{502, "http_status"}, {502, "http_status"}, {200, ""}}
		if diff := cmp.Diff([][]attempt{three, three}, got); diff != "" {
			t.Errorf("attempts (-want +got):\n%s", diff)
		}
	})
}

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestCallbackAbandonedAfterWindow(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		clock := &fakeClock{now: time.Now()}
		rcv := newReceiver(t, always(http.StatusServiceUnavailable))
		cfg := callbackConfig()
		cfg.Now = clock.Now
		p := build(t, st, cfg) // no targets: no running task to race the clock
		client := newClientWithSecret(t, st, clientSecret)
		id := submitWithCallback(t, st, p, client, rcv.srv.URL, email)
		// Submitted with the callback; canceled in the same way intake does,
		// so exactly one event exists when the clock starts to move.
		err := st.InTx(context.Background(), func(tx store.Tx) error {
			req, err := tx.LockRequest(context.Background(), id)
			if err != nil {
				return err
			}
			_, err = p.Terminate(context.Background(), tx, req, nil, terminate.Ending{To: lethe.StatusCanceled, At: clock.Now()})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// Every attempt takes 7 hours of the injected clock: the 24h
		// window is over after the fourth.
		rcv.onHit = func() { clock.advance(7 * time.Hour) }
		startBuilt(t, p)
		es := waitCallbacks(t, st, id, 1)
		waitIdle(t, p)

		e := es[0]
		if e.State != store.CallbackAbandoned || len(e.Attempts) != 4 {
			t.Fatalf("event: state %s, %d attempts; want abandoned after 4", e.State, len(e.Attempts))
		}
		for _, a := range e.Attempts {
			if a.HTTPStatus != http.StatusServiceUnavailable || a.Error != "http_status" {
				t.Errorf("attempt %+v", a)
			}
		}
		if n := len(rcv.deliveries()); n != 4 {
			t.Errorf("receiver was called %d times, want 4", n)
		}
	})
}

func TestSuppressionOnCompletion(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		linked := lethe.Identity{Type: lethe.IdentityUserID, Value: "42"}
		target := newMemTarget()
		target.links[email] = []lethe.Identity{linked}
		cfg := testConfig()
		cfg.Suppression = true
		p := start(t, st, cfg, Target{"t", target})
		done := submit(t, st, p, email)
		waitDone(t, st, done, lethe.StatusCompleted)

		stranger := lethe.Identity{Type: lethe.IdentityEmail, Value: "someone.else@example.com"}
		got, err := st.CheckSuppressions(ctx, store.Scope{All: true}, []lethe.Identity{email, linked, stranger})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]bool{true, true, false}, got); diff != "" {
			t.Errorf("suppressed (-want +got):\n%s", diff)
		}
		if n := auditTypes(t, st, done)["request.suppressed"]; n != 1 {
			t.Errorf("request.suppressed events = %d, want 1", n)
		}

		// A failed request is not on the list.
		target.mu.Lock()
		target.eraseErr = connector.Permanent(fmt.Errorf("no"))
		target.mu.Unlock()
		failed := submit(t, st, p, stranger)
		waitDone(t, st, failed, lethe.StatusFailed)
		got, err = st.CheckSuppressions(ctx, store.Scope{All: true}, []lethe.Identity{stranger})
		if err != nil || got[0] {
			t.Errorf("failed request's identity suppressed: %v %v", got, err)
		}
	})
}

// TestSignatureVectorInDocs: the test vector receivers are told to check
// their code against is what SignCallback produces.
func TestSignatureVectorInDocs(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/callbacks.md")
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) string {
		t.Helper()
		m := regexp.MustCompile("(?m)^- " + name + ": `([^`]*)`$").FindSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/callbacks.md has no test vector line for %s", name)
		}
		return string(m[1])
	}
	secret, ts, body, header := field("secret"), field("t"), field("body"), field("X-Lethe-Signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := SignCallback(time.Unix(sec, 0), []byte(body), secret); got != header {
		t.Errorf("SignCallback = %s, docs say %s", got, header)
	}
	if !verifySignature(header, []byte(body), secret) {
		t.Error("the documented header does not verify")
	}
	// The shell snippet's openssl output is the v1 value.
	if !bytes.Contains(doc, []byte(strings.TrimPrefix(header, "t="+ts+",v1="))) {
		t.Error("docs do not show the v1 value")
	}
}

func TestCallbackTransportRules(t *testing.T) {
	t.Parallel()
	// Cleanup, not defer: the parallel subtests run after this returns.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ok.Close)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, ok.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(elsewhere.Close)
	sameHost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
		}
		if r.URL.Path == "/get" {
			http.Redirect(w, r, "/new", http.StatusFound) // would turn the POST into a GET
		}
	}))
	t.Cleanup(sameHost.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
	}))
	t.Cleanup(slow.Close)

	pipe := func(mod func(*CallbackConfig)) *Pipeline {
		c := CallbackConfig{AdminSecret: adminSecret, Timeout: 300 * time.Millisecond, Guard: loopbackGuard}
		if mod != nil {
			mod(&c)
		}
		c = c.withDefaults()
		return &Pipeline{cfg: Config{Callbacks: c, Now: time.Now}, callbackClient: newCallbackClient(c), log: slog.New(slog.DiscardHandler)}
	}
	for _, tc := range []struct {
		name       string
		mod        func(*CallbackConfig)
		url        string
		wantStatus int
		wantClass  string
	}{
		{"plain", nil, ok.URL, 200, ""},
		{"redirect to another host", nil, elsewhere.URL, 0, classRedirect},
		{"307/308 on the same host", nil, sameHost.URL + "/old", 200, ""},
		{"302 on the same host", nil, sameHost.URL + "/get", 0, classRedirect},
		{"timeout", nil, slow.URL, 0, classTimeout},
		{"connection refused", nil, "http://127.0.0.1:1/", 0, classConnect},
		{"private address forbidden", func(c *CallbackConfig) { c.Guard = nil }, ok.URL, 0, classForbiddenAddr},
		{"host not allowed", func(c *CallbackConfig) { c.AllowHosts = []string{"hooks.example.com"} }, ok.URL, 0, classForbiddenHost},
		{"host allowed", func(c *CallbackConfig) { c.AllowHosts = []string{"example.com", "127.0.0.1"} }, ok.URL, 200, ""},
		{"no admin secret", func(c *CallbackConfig) { c.AdminSecret = "" }, ok.URL, 0, classNoSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := &store.CallbackEvent{ID: "e", URL: tc.url, Body: []byte(`{}`)}
			status, class := pipe(tc.mod).postCallback(context.Background(), ev)
			if status != tc.wantStatus || class != tc.wantClass {
				t.Errorf("got %d %q, want %d %q", status, class, tc.wantStatus, tc.wantClass)
			}
		})
	}
}

func TestHostAllowedAndPublicAddr(t *testing.T) {
	t.Parallel()
	allow := []string{"hooks.example.com", "*.partner.example"}
	for host, want := range map[string]bool{
		"hooks.example.com": true, "HOOKS.example.com.": true, "evil.example.com": false,
		"a.partner.example": true, "partner.example": false, "xpartner.example": false,
	} {
		if got := hostAllowed(allow, host); got != want {
			t.Errorf("hostAllowed(%q) = %v", host, got)
		}
	}
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "10.1.2.3": false, "127.0.0.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "::1": false, "fd00::1": false, "::ffff:10.0.0.1": false,
		"2001:4860:4860::8888": true, "0.0.0.0": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v", addr, got)
		}
	}
}
