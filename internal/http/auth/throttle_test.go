package auth

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/response"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func attempt(addr, key string) Attempt {
	r := httptest.NewRequest("POST", "/", nil)
	r.RemoteAddr = addr + ":1234"
	return AttemptOf(r, "test", key)
}

func blockedFor(t *testing.T, err error) time.Duration {
	t.Helper()
	rl, ok := errors.AsType[*response.RateLimitError](err)
	if !ok || lethe.ErrorCode(err) != lethe.ERATELIMIT {
		t.Fatalf("error %v is not a rate limit", err)
	}
	return rl.After
}

func TestThrottlePerKey(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	th := NewThrottle(FailureRule{Failures: 3, Window: time.Minute, Block: 5 * time.Minute}, FailureRule{Failures: 100, Window: time.Minute, Block: time.Minute}, c.now)
	// Failures from several addresses add up on the key.
	for i, addr := range []string{"192.0.2.1", "192.0.2.2"} {
		if err := th.Check(attempt(addr, "key-a")); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		if err := th.Fail(attempt(addr, "key-a")); err != nil {
			t.Fatalf("failure %d blocked: %v", i+1, err)
		}
	}
	if got := blockedFor(t, th.Fail(attempt("192.0.2.3", "key-a"))); got != 5*time.Minute {
		t.Fatalf("third failure blocks for %s, want 5m", got)
	}
	c.t = c.t.Add(2 * time.Minute)
	if got := blockedFor(t, th.Check(attempt("192.0.2.9", "key-a"))); got != 3*time.Minute {
		t.Fatalf("blocked key from a new address: wait %s, want 3m", got)
	}
	if err := th.Check(attempt("192.0.2.9", "key-b")); err != nil {
		t.Fatalf("another key is blocked too: %v", err)
	}
	c.t = c.t.Add(3 * time.Minute)
	if err := th.Check(attempt("192.0.2.1", "key-a")); err != nil {
		t.Fatalf("after the block: %v", err)
	}
	// The count starts again after the block.
	if err := th.Fail(attempt("192.0.2.1", "key-a")); err != nil {
		t.Fatalf("first failure after the block: %v", err)
	}
}

func TestThrottleWindow(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	th := NewThrottle(FailureRule{Failures: 3, Window: time.Minute, Block: time.Minute}, FailureRule{Failures: 100, Window: time.Minute, Block: time.Minute}, c.now)
	// Two failures a window never block.
	for i := range 10 {
		for range 2 {
			if err := th.Fail(attempt("192.0.2.1", "k")); err != nil {
				t.Fatalf("window %d blocked: %v", i, err)
			}
		}
		c.t = c.t.Add(time.Minute)
	}
}

func TestThrottlePerAddress(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	th := NewThrottle(FailureRule{Failures: 100, Window: time.Minute, Block: time.Minute}, FailureRule{Failures: 4, Window: time.Minute, Block: time.Minute}, c.now)
	// Spraying keys (or sending none) from one address is blocked by address.
	for i := range 3 {
		if err := th.Fail(attempt("198.51.100.1", strconv.Itoa(i))); err != nil {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	blockedFor(t, th.Fail(attempt("198.51.100.1", "")))
	blockedFor(t, th.Check(attempt("198.51.100.1", "fresh-key")))
	if err := th.Check(attempt("198.51.100.2", "a")); err != nil {
		t.Fatalf("another address is blocked: %v", err)
	}
}

// TestThrottleBounded: made-up keys beyond the bound share one key rather
// than growing the map, and that key is throttled as well.
func TestThrottleBounded(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	th := NewThrottle(FailureRule{Failures: 1000, Window: time.Minute, Block: time.Minute}, FailureRule{Failures: 1000, Window: time.Minute, Block: time.Minute}, c.now)
	for i := range maxThrottleKeys {
		th.Fail(Attempt{surface: "s", addr: strconv.Itoa(i)})
	}
	if len(th.seen) != maxThrottleKeys {
		t.Fatalf("%d keys, want %d", len(th.seen), maxThrottleKeys)
	}
	var err error
	for i := range 1000 {
		err = th.Fail(Attempt{surface: "s", addr: "new" + strconv.Itoa(i)})
	}
	blockedFor(t, err)
	if len(th.seen) > maxThrottleKeys+1 {
		t.Fatalf("%d keys, want at most %d", len(th.seen), maxThrottleKeys+1)
	}
	// Once the window has passed, stale keys make room again.
	c.t = c.t.Add(2 * time.Minute)
	if err := th.Fail(Attempt{surface: "s", addr: "later"}); err != nil {
		t.Fatal(err)
	}
	if len(th.seen) > 2 {
		t.Fatalf("%d keys after the window, want stale ones forgotten", len(th.seen))
	}
}
