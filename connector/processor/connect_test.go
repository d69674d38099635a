package processor_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

const (
	connToken  = "/v2/oauth/token"
	connDelete = "/v2/compliance/customers/delete"
	connStatus = "/v2/compliance/customers/deletion/status"
)

var (
	connEmail = lethe.Identity{Type: lethe.IdentityEmail, Value: "grace.forward@example.com"}
	connPhone = lethe.Identity{Type: lethe.IdentityPhone, Value: "+4915198765432"}
	connUser  = lethe.Identity{Type: lethe.IdentityUserID, Value: "cust-fwd-subject-9917"}
	// Not allowed for the target: never sent.
	connCustom = lethe.Identity{Type: "x-loyalty", Value: "loyalty-fwd-secret-77"}
	connOther  = []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: "other.forward@example.com"},
		{Type: lethe.IdentityUserID, Value: "cust-fwd-other-1"},
	}
	connMine = []lethe.Identity{connEmail, connPhone, connUser}
)

func connSubject() connector.Subject {
	return connector.Subject{RequestID: "req-connect-1", Identities: []lethe.Identity{connEmail, connCustom, connPhone, connUser}}
}

func connOptions(r *receiver) processor.ConnectOptions {
	return processor.ConnectOptions{
		Options: processor.Options{
			BaseURL:      r.url,
			Identities:   []lethe.IdentityType{lethe.IdentityEmail, lethe.IdentityPhone, lethe.IdentityUserID},
			Timeout:      5 * time.Second,
			PollInterval: 10 * time.Millisecond,
			PollMax:      50 * time.Millisecond,
			AllowHosts:   []string{"127.0.0.1"}, // the test processor listens on loopback
		},
		ClientID:     clientID,
		ClientSecret: clientSecret,
	}
}

// TestConnectConformance runs the suite with a second lethe as the
// processor, running its own pipeline: a subject's identity "remains"
// until the receiver reports its request completed, which is also what
// the connector waits for before it reports done.
func TestConnectConformance(t *testing.T) {
	t.Parallel()
	connectortest.Exercise(t, connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		r := startReceiver(tb, receiverConfig{pipeline: true})
		for _, id := range connOther {
			r.submit(tb, id)
		}
		r.waitCompleted(tb, connOther) // so others' dump no longer changes
		c, err := processor.OpenConnect("storefront", connOptions(r))
		if err != nil {
			tb.Fatal(err)
		}
		return connectortest.Fixture{
			Connector: c,
			Subject:   connSubject(),
			Snapshot: func(tb testing.TB) (string, string) {
				return r.dump(tb, append(connMine, connCustom)), r.dump(tb, connOther)
			},
			Remaining: func(tb testing.TB) int64 {
				return r.count(tb, connMine, func(q *lethe.Request) bool { return q == nil || q.Status != lethe.StatusCompleted })
			},
		}
	}})
}

// TestConnectTokenExpiry: a token the receiver no longer accepts (its
// clock moved past the expiry the connector was told) gets one 401, one
// new token and one repeat; a token near its expiry on the connector's
// clock is replaced before use.
func TestConnectTokenExpiry(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{tokenTTL: time.Hour})
	clk := newClock()
	c, err := processor.OpenConnectAt("storefront", connOptions(r), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	one := connector.Subject{RequestID: "r1", Identities: []lethe.Identity{connEmail}}
	if _, err := c.Plan(ctx, one); err != nil {
		t.Fatal(err)
	}
	if n := r.calls(connToken); n != 1 {
		t.Fatalf("%d token calls, want 1", n)
	}
	if _, err := c.Plan(ctx, one); err != nil || r.calls(connToken) != 1 {
		t.Fatalf("the token was not reused: %v, %d token calls", err, r.calls(connToken))
	}
	// Expired at the receiver, not yet on the connector's clock.
	r.advance(2 * time.Hour)
	if _, err := c.Plan(ctx, one); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := r.calls(connToken); n != 2 {
		t.Errorf("%d token calls, want 2 (one refresh after the 401)", n)
	}
	// Near expiry on the connector's clock: refreshed up front.
	statusBefore := r.calls(connStatus)
	clk.advance(56 * time.Minute)
	if _, err := c.Plan(ctx, one); err != nil {
		t.Fatal(err)
	}
	if n, s := r.calls(connToken), r.calls(connStatus)-statusBefore; n != 3 || s != 1 {
		t.Errorf("%d token calls (want 3), %d status calls (want 1: no 401 first)", n, s)
	}
}

// TestConnectConcurrentToken: many calls needing a token at once fetch
// it once.
func TestConnectConcurrentToken(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	c, err := processor.OpenConnect("storefront", connOptions(r))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := connector.Subject{RequestID: "r", Identities: []lethe.Identity{connOther[i%2]}}
			if _, err := c.Plan(context.Background(), s); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := r.calls(connToken); n != 1 {
		t.Errorf("%d token calls, want 1", n)
	}
}

// TestConnectThrottled: the receiver's own rate limit answers 429 with
// Retry-After; the connector waits (Pending) and does not report done.
func TestConnectThrottled(t *testing.T) {
	t.Parallel()
	// Token, status, then the deletion is the third call in the minute.
	r := startReceiver(t, receiverConfig{connRule: ratelimit.Rule{Limit: 2, Window: time.Minute}})
	c, err := processor.OpenConnect("storefront", connOptions(r))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Erase(context.Background(), connector.Subject{RequestID: "r1", Identities: []lethe.Identity{connEmail}})
	p := wantPending(t, err)
	if rep.Total() != 0 || p.After < 30*time.Second || p.After > time.Minute {
		t.Errorf("rows %d, after %s; want 0 rows and the receiver's Retry-After", rep.Total(), p.After)
	}
	if n := r.count(t, []lethe.Identity{connEmail}, func(q *lethe.Request) bool { return q != nil }); n != 0 {
		t.Errorf("a request reached the receiver")
	}
}

// TestConnectServerError: a 500 from the status endpoint is retryable.
func TestConnectServerError(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	c, err := processor.OpenConnect("storefront", connOptions(r))
	if err != nil {
		t.Fatal(err)
	}
	r.failNext(connStatus, 1)
	s := connector.Subject{RequestID: "r1", Identities: []lethe.Identity{connEmail, connUser}}
	_, err = c.Erase(context.Background(), s)
	if err == nil || connector.IsPending(err) || connector.IsPermanent(err) {
		t.Fatalf("500: got %v, want a retryable error", err)
	}
	// The deletion endpoint fails after the first identity: what was
	// accepted is kept in a pending answer's checkpoint, and the next call
	// submits only the rest.
	r.mu.Lock()
	r.failCall = func(path string, n int) bool { return path == connDelete && n == 2 }
	r.mu.Unlock()
	rep, err := c.Erase(context.Background(), s)
	p := wantPending(t, err)
	if rep.Total() != 1 || p.Checkpoint == "" {
		t.Fatalf("rows %d, checkpoint %q; want 1 and a checkpoint", rep.Total(), p.Checkpoint)
	}
	s.Checkpoint = p.Checkpoint
	rep, err = c.Erase(context.Background(), s)
	wantPending(t, err) // submitted; waiting for the receiver, which has no pipeline here
	if rep.Total() != 1 || r.calls(connDelete) != 3 {
		t.Errorf("rows %d, %d deletion calls; want 1 and 3", rep.Total(), r.calls(connDelete))
	}
}

// TestConnectAlreadyExists: {"success": false} is submitted, not an error;
// "canceled" for an identity this task submitted fails the task.
func TestConnectAlreadyExists(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := "not_found"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case connToken:
			w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":3600}`))
		case connDelete:
			w.Write([]byte(`{"success": false}`))
			status = "pending"
		case connStatus:
			w.Write([]byte(`{"results":[{"identifier":"` + connEmail.Value + `","status":"` + status + `"}]}`))
		}
	}))
	t.Cleanup(srv.Close)
	o := processor.ConnectOptions{
		Options:  processor.Options{BaseURL: srv.URL, Identities: []lethe.IdentityType{lethe.IdentityEmail}, PollInterval: time.Millisecond, AllowHosts: []string{"127.0.0.1"}},
		ClientID: "id", ClientSecret: "secret",
	}
	c, err := processor.OpenConnect("storefront", o)
	if err != nil {
		t.Fatal(err)
	}
	s := connector.Subject{RequestID: "r1", Identities: []lethe.Identity{connEmail}}
	rep, err := c.Erase(context.Background(), s)
	p := wantPending(t, err)
	if rep.Total() != 1 {
		t.Fatalf("rows %d, want 1: an existing request counts as submitted", rep.Total())
	}
	mu.Lock()
	status = "canceled"
	mu.Unlock()
	s.Checkpoint = p.Checkpoint
	_, err = c.Erase(context.Background(), s)
	if !connector.IsPermanent(err) {
		t.Errorf("canceled after submitting: got %v, want permanent", err)
	}
	noValues(t, err)
	if !strings.Contains(err.Error(), "canceled") {
		t.Errorf("error does not say why: %v", err)
	}
}

// TestConnectValidate: at start, refused credentials stop lethe; a
// processor that cannot be reached does not.
func TestConnectValidate(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	ctx := context.Background()
	good, err := processor.OpenConnect("storefront", connOptions(r))
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Validate(ctx); err != nil {
		t.Errorf("right credentials: %v", err)
	}
	o := connOptions(r)
	o.ClientSecret = "wrong-secret-0123456789"
	bad, err := processor.OpenConnect("storefront", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Validate(ctx); !connector.IsPermanent(err) || strings.Contains(err.Error(), o.ClientSecret) {
		t.Errorf("wrong secret: got %v, want a permanent error without the secret", err)
	}
	o = connOptions(r)
	o.BaseURL = "http://127.0.0.1:1" // nothing listens there
	down, err := processor.OpenConnect("storefront", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Validate(ctx); err != nil {
		t.Errorf("unreachable processor stopped the start: %v", err)
	}
	for _, c := range []*processor.Connector{good, bad, down} {
		c.Close()
	}
}
