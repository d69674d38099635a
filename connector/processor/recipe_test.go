package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/httprecipe"
	"github.com/lethe-privacy/lethe/connector/processor"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// The processor-s2s and processor-connect APIs written as HTTP recipes
// (connector/httprecipe/recipes) run against the same receiving lethe as
// the Go connectors, through the same checks.

func s2sRecipe(t testing.TB, r *receiver, now func() time.Time, rate processor.Rate) *httprecipe.Connector {
	t.Helper()
	c, err := httprecipe.OpenAt("purchasely", httprecipe.Options{
		Recipe: "processor-s2s", BaseURL: r.url, AllowHosts: []string{"127.0.0.1"}, Timeout: 5 * time.Second,
		Settings:  map[string]string{"api_key": apiKey, "secret": sharedSecret},
		RateLimit: rate,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func connectRecipe(t testing.TB, r *receiver, now func() time.Time) *httprecipe.Connector {
	t.Helper()
	c, err := httprecipe.OpenAt("storefront", httprecipe.Options{
		Recipe: "processor-connect", BaseURL: r.url, AllowHosts: []string{"127.0.0.1"}, Timeout: 5 * time.Second,
		Settings:     map[string]string{"client_id": clientID, "client_secret": clientSecret},
		PollInterval: 10 * time.Millisecond, PollMax: 50 * time.Millisecond,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestS2SRecipeConformance is TestS2SConformance with the recipe: the
// receiver accepts its signatures, so the body bytes and the HMAC are the
// contract's.
func TestS2SRecipeConformance(t *testing.T) {
	t.Parallel()
	connectortest.Exercise(t, connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		r := startReceiver(tb, receiverConfig{})
		for _, id := range s2sOther {
			r.submit(tb, id)
		}
		c := s2sRecipe(tb, r, time.Now, processor.Rate{})
		mine := []lethe.Identity{s2sUser1, s2sUser2}
		return connectortest.Fixture{
			Connector: c,
			Subject:   s2sSubject(),
			Blind:     true,
			Snapshot: func(tb testing.TB) (string, string) {
				return r.dump(tb, append(mine, s2sEmail)), r.dump(tb, s2sOther)
			},
			Remaining: func(tb testing.TB) int64 {
				return r.count(tb, mine, func(q *lethe.Request) bool { return q == nil })
			},
		}
	}})
}

// TestS2SRecipeThrottled is TestS2SThrottled with the recipe: the second
// user id gets the receiver's 429, the recipe waits its Retry-After with
// the first id in the checkpoint, makes no call while blocked, and then
// submits only the second.
func TestS2SRecipeThrottled(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{s2sRule: ratelimit.Rule{Limit: 1, Window: 10 * time.Minute, Block: 10 * time.Minute}})
	clk := newClock()
	c := s2sRecipe(t, r, clk.now, processor.PerWindow(0, 0))
	ctx := context.Background()
	s := s2sSubject()
	rep, err := c.Erase(ctx, s)
	p := wantPending(t, err)
	if p.After != 10*time.Minute || rep.Total() != 1 || p.Checkpoint == "" || rep.Items[0].Reference == "" {
		t.Fatalf("after %s, rows %d, checkpoint %q, reference %q; want 10m, 1, a checkpoint and the receiver's id", p.After, rep.Total(), p.Checkpoint, rep.Items[0].Reference)
	}
	clk.advance(5 * time.Minute)
	s.Checkpoint = p.Checkpoint
	if _, err := c.Erase(ctx, s); !connector.IsPending(err) || r.calls(s2sPath) != 2 {
		t.Fatalf("while blocked: %v, %d calls; want pending and no call", err, r.calls(s2sPath))
	}
	clk.advance(5*time.Minute + time.Second)
	r.advance(10*time.Minute + time.Second)
	rep, err = c.Erase(ctx, s)
	if err != nil || rep.Total() != 1 || r.calls(s2sPath) != 3 {
		t.Fatalf("after the block: %v, %d rows, %d calls; want done, 1, 3", err, rep.Total(), r.calls(s2sPath))
	}
	if n := r.count(t, []lethe.Identity{s2sUser1, s2sUser2}, func(q *lethe.Request) bool { return q == nil }); n != 0 {
		t.Errorf("%d user ids have no request at the receiver", n)
	}
}

// TestS2SRecipeDefaults: the recipe's own budget (50/10m) holds calls back
// before the processor has to, and a wrong secret is a permanent 403.
func TestS2SRecipeDefaults(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{})
	c := s2sRecipe(t, r, newClock().now, processor.PerWindow(1, 10*time.Minute))
	rep, err := c.Erase(context.Background(), s2sSubject())
	if p := wantPending(t, err); rep.Total() != 1 || p.After != 10*time.Minute || r.calls(s2sPath) != 1 {
		t.Errorf("rows %d, after %s, calls %d; want 1, 10m, 1", rep.Total(), p.After, r.calls(s2sPath))
	}
	bad, err := httprecipe.Open("purchasely", httprecipe.Options{
		Recipe: "processor-s2s", BaseURL: r.url, AllowHosts: []string{"127.0.0.1"},
		Settings: map[string]string{"api_key": apiKey, "secret": "not-the-secret-0123456789"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Erase(context.Background(), connector.Subject{RequestID: "r2", Identities: []lethe.Identity{s2sUser2}})
	if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Errorf("wrong secret: got %v, want a permanent 403", err)
	}
	noValues(t, err)
}

// TestConnectRecipeConformance is TestConnectConformance with the recipe:
// a subject's identity remains until the receiver's own pipeline reports
// its request completed.
func TestConnectRecipeConformance(t *testing.T) {
	t.Parallel()
	connectortest.Exercise(t, connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		r := startReceiver(tb, receiverConfig{pipeline: true})
		for _, id := range connOther {
			r.submit(tb, id)
		}
		r.waitCompleted(tb, connOther)
		c := connectRecipe(tb, r, time.Now)
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

// TestConnectRecipeTokenExpiry is TestConnectTokenExpiry with the recipe:
// one token reused, one 401 after the receiver's expiry answered with one
// new token, and a token near its expiry on lethe's clock replaced first.
func TestConnectRecipeTokenExpiry(t *testing.T) {
	t.Parallel()
	r := startReceiver(t, receiverConfig{tokenTTL: time.Hour})
	clk := newClock()
	c := connectRecipe(t, r, clk.now)
	ctx := context.Background()
	one := connector.Subject{RequestID: "r1", Identities: []lethe.Identity{connEmail}}
	for range 2 {
		if _, err := c.Plan(ctx, one); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.calls(connToken); n != 1 {
		t.Fatalf("%d token calls, want 1", n)
	}
	r.advance(2 * time.Hour)
	if _, err := c.Plan(ctx, one); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := r.calls(connToken); n != 2 {
		t.Errorf("%d token calls, want 2 (one refresh after the 401)", n)
	}
	statusBefore := r.calls(connStatus)
	clk.advance(56 * time.Minute)
	if _, err := c.Plan(ctx, one); err != nil {
		t.Fatal(err)
	}
	if n, s := r.calls(connToken), r.calls(connStatus)-statusBefore; n != 3 || s != 1 {
		t.Errorf("%d token calls (want 3), %d status calls (want 1: no 401 first)", n, s)
	}
	// Wrong credentials stop the start; the secret is never shown.
	bad, err := httprecipe.Open("storefront", httprecipe.Options{
		Recipe: "processor-connect", BaseURL: r.url, AllowHosts: []string{"127.0.0.1"},
		Settings: map[string]string{"client_id": clientID, "client_secret": "wrong-secret-0123456789"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Validate(ctx); !connector.IsPermanent(err) || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("wrong secret: got %v, want a permanent error without the secret", err)
	}
}
