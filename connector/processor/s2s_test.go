package processor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

const s2sPath = "/user_deletion_requests"

var (
	s2sUser1 = lethe.Identity{Type: lethe.IdentityUserID, Value: "u-fwd-subject-4711"}
	s2sUser2 = lethe.Identity{Type: lethe.IdentityUserID, Value: "u-fwd-subject-0815"}
	// Not a type an s2s target receives by default: never sent.
	s2sEmail = lethe.Identity{Type: lethe.IdentityEmail, Value: "ada.forward@example.com"}
	s2sOther = []lethe.Identity{
		{Type: lethe.IdentityUserID, Value: "u-fwd-other-1"},
		{Type: lethe.IdentityUserID, Value: "u-fwd-other-2"},
	}
)

func s2sSubject() connector.Subject {
	return connector.Subject{RequestID: "req-s2s-1", Identities: []lethe.Identity{s2sUser1, s2sEmail, s2sUser2}}
}

func s2sOptions(r *receiver) processor.S2SOptions {
	return processor.S2SOptions{
		Options: processor.Options{BaseURL: r.url, Timeout: 5 * time.Second, AllowHosts: []string{"127.0.0.1"}},
		APIKey:  apiKey,
		Secret:  sharedSecret,
	}
}

// clock is the forwarder's manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Now()} }

// TestS2SConformance runs the suite with a second lethe as the processor.
// The s2s API cannot be read back, so the harness observes the receiving
// lethe's store: a subject's user id "remains" until the receiver holds a
// request for it; what the receiver then does with it is its business and
// beyond what the API lets the forwarder know (hence Blind).
func TestS2SConformance(t *testing.T) {
	t.Parallel()
	connectortest.Exercise(t, connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		r := startReceiver(tb, receiverConfig{})
		for _, id := range s2sOther {
			r.submit(tb, id)
		}
		c, err := processor.OpenS2S("purchasely", s2sOptions(r))
		if err != nil {
			tb.Fatal(err)
		}
		mine := []lethe.Identity{s2sUser1, s2sUser2}
		return connectortest.Fixture{
			Connector: c,
			Subject:   s2sSubject(),
			Blind:     true,
			Snapshot: func(tb testing.TB) (string, string) {
				// The email would be "none" whatever happens: listing it
				// shows it never reached the receiver.
				return r.dump(tb, append(mine, s2sEmail)), r.dump(tb, s2sOther)
			},
			Remaining: func(tb testing.TB) int64 {
				return r.count(tb, mine, func(q *lethe.Request) bool { return q == nil })
			},
		}
	}})
}

func TestS2SSignatureVector(t *testing.T) {
	t.Parallel()
	const want = "06d2310b2fd4576c7287a7be99e2450a12e0fc1f4d62b1f1ef54aa3a38836677"
	if got := processor.S2SSign([]byte(`{"user_id":"12345"}`), []byte("foobar")); got != want {
		t.Fatalf("S2SSign = %s, want the contract's %s", got, want)
	}
}

// TestS2SThrottled: the receiver allows one request per 10 minutes. The
// second user id gets a 429: the connector waits the Retry-After (Pending
// with the first id in the checkpoint), makes no call while the block
// lasts, and after it submits only the second.
func TestS2SThrottled(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{s2sRule: ratelimit.Rule{Limit: 1, Window: 10 * time.Minute, Block: 10 * time.Minute}})
	clk := newClock()
	o := s2sOptions(r)
	o.RateLimit = processor.PerWindow(0, 0) // let the receiver do the refusing
	c, err := processor.OpenS2SAt("purchasely", o, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := s2sSubject()

	rep, err := c.Erase(ctx, s)
	p := wantPending(t, err)
	if p.After != 10*time.Minute || rep.Total() != 1 || p.Checkpoint == "" {
		t.Fatalf("after %s, rows %d, checkpoint %q; want 10m, 1 and a checkpoint", p.After, rep.Total(), p.Checkpoint)
	}
	if n := r.calls(s2sPath); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
	// Blocked: no call leaves, for this subject or any other.
	clk.advance(5 * time.Minute)
	s.Checkpoint = p.Checkpoint
	_, err = c.Erase(ctx, s)
	if p2 := wantPending(t, err); p2.After != 5*time.Minute || p2.Checkpoint != p.Checkpoint {
		t.Errorf("while blocked: after %s, checkpoint kept %v", p2.After, p2.Checkpoint == p.Checkpoint)
	}
	if n := r.calls(s2sPath); n != 2 {
		t.Fatalf("a call left while blocked (%d calls)", n)
	}
	// The block ends on both sides.
	clk.advance(5*time.Minute + time.Second)
	r.advance(10*time.Minute + time.Second)
	rep, err = c.Erase(ctx, s)
	if err != nil || rep.Total() != 1 {
		t.Fatalf("after the block: %v, %d rows", err, rep.Total())
	}
	if n := r.calls(s2sPath); n != 3 {
		t.Errorf("%d calls, want 3: the accepted id was submitted again", n)
	}
	if n := r.count(t, []lethe.Identity{s2sUser1, s2sUser2}, func(q *lethe.Request) bool { return q == nil }); n != 0 {
		t.Errorf("%d user ids have no request at the receiver", n)
	}
}

// TestS2SBudget: the target's own budget holds calls back before the
// processor has to.
func TestS2SBudget(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	clk := newClock()
	o := s2sOptions(r)
	o.RateLimit = processor.PerWindow(1, 10*time.Minute)
	c, err := processor.OpenS2SAt("purchasely", o, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Erase(context.Background(), s2sSubject())
	p := wantPending(t, err)
	if rep.Total() != 1 || p.After != 10*time.Minute || r.calls(s2sPath) != 1 {
		t.Errorf("rows %d, after %s, calls %d; want 1, 10m, 1", rep.Total(), p.After, r.calls(s2sPath))
	}
}

// TestS2SServerError: a 500 is a retryable error (not pending, not
// permanent); the retry succeeds. A wrong secret is permanent.
func TestS2SServerError(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	c, err := processor.OpenS2S("purchasely", s2sOptions(r))
	if err != nil {
		t.Fatal(err)
	}
	r.failNext(s2sPath, 1)
	s := connector.Subject{RequestID: "r1", Identities: []lethe.Identity{s2sUser1}}
	_, err = c.Erase(context.Background(), s)
	if err == nil || connector.IsPending(err) || connector.IsPermanent(err) {
		t.Fatalf("500: got %v, want a retryable error", err)
	}
	noValues(t, err)
	if rep, err := c.Erase(context.Background(), s); err != nil || rep.Total() != 1 {
		t.Fatalf("retry: %v, %d rows", err, rep.Total())
	}

	o := s2sOptions(r)
	o.Secret = "not-the-secret-0123456789"
	bad, err := processor.OpenS2S("purchasely", o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Erase(context.Background(), connector.Subject{RequestID: "r2", Identities: []lethe.Identity{s2sUser2}})
	if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Errorf("wrong secret: got %v, want a permanent 403", err)
	}
}

func TestS2SOptions(t *testing.T) {
	t.Parallel()
	doc := `
base_url: https://s2s.purchasely.io
api_key: k-123
secret: s-456
timeout: 5s
rate_limit: 40/10m
batch_size: 5
`
	in := processor.S2SInfo()
	tgt := connector.Target{Name: "purchasely", Kind: in.Kind, Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) }}
	if _, err := in.New(context.Background(), tgt); err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"no key":        "base_url: https://x.example\nsecret: s\n",
		"no secret":     "base_url: https://x.example\napi_key: k\n",
		"no url":        "api_key: k\nsecret: s\n",
		"plain http":    "base_url: http://x.example\napi_key: k\nsecret: s\n",
		"url with cred": "base_url: https://u:p@x.example\napi_key: k\nsecret: s\n",
		"bad rate":      "base_url: https://x.example\napi_key: k\nsecret: s\nrate_limit: lots\n",
		"bad type":      "base_url: https://x.example\napi_key: k\nsecret: s\nidentities: [nope]\n",
	} {
		tgt := connector.Target{Name: "p", Kind: in.Kind, Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) }}
		_, err := in.New(context.Background(), tgt)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "u:p") {
			t.Errorf("%s: error shows the URL's credentials: %v", name, err)
		}
	}
}

func wantPending(t *testing.T, err error) *connector.PendingError {
	t.Helper()
	var p *connector.PendingError
	if !errors.As(err, &p) {
		t.Fatalf("got %v, want pending", err)
	}
	noValues(t, err)
	return p
}

// noValues fails when err shows an identity value of the tests.
func noValues(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, id := range append([]lethe.Identity{s2sUser1, s2sUser2, s2sEmail, connEmail, connPhone, connUser}, s2sOther...) {
		if strings.Contains(err.Error(), id.Value) {
			t.Errorf("error shows an identity value: %v", err)
		}
	}
}

// TestPrivateAddressRefusedByDefault: without allow_hosts, a processor on
// a loopback address is never called; the refusal is permanent, since a
// retry would meet the same address.
func TestPrivateAddressRefusedByDefault(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	o := s2sOptions(r)
	o.AllowHosts = nil
	c, err := processor.OpenS2S("purchasely", o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Erase(context.Background(), s2sSubject())
	if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "allow_hosts") {
		t.Fatalf("Erase = %v, want a permanent refusal naming allow_hosts", err)
	}
	if n := r.calls(s2sPath); n != 0 {
		t.Fatalf("%d calls reached the loopback processor, want none", n)
	}
}
