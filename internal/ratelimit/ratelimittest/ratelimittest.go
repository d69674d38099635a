// Package ratelimittest is the conformance suite every ratelimit.Limiter
// runs, and a settable clock for tests that must cross a window or a block
// without sleeping.
package ratelimittest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// Clock is a manual clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to a fixed, whole-second instant, so
// millisecond-resolution limiters see the same times as exact ones.
func NewClock() *Clock {
	return &Clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// Now returns the current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Open returns n Limiters that share state (each on its own connection where
// the implementation has connections) and read time from now.
type Open func(t *testing.T, now func() time.Time, n int) []ratelimit.Limiter

// Exercise runs the conformance suite against the limiters open returns.
func Exercise(t *testing.T, open Open) {
	ctx := context.Background()
	rule := ratelimit.Rule{Limit: 50, Window: 10 * time.Minute, Block: 10 * time.Minute}

	allow := func(t *testing.T, l ratelimit.Limiter, key string, r ratelimit.Rule) (bool, time.Duration) {
		t.Helper()
		ok, retry, err := l.Allow(ctx, key, r)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		return ok, retry
	}
	allowN := func(t *testing.T, l ratelimit.Limiter, key string, r ratelimit.Rule, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if ok, _ := allow(t, l, key, r); !ok {
				t.Fatalf("request %d of %d refused, want allowed", i+1, n)
			}
		}
	}
	refused := func(t *testing.T, l ratelimit.Limiter, key string, r ratelimit.Rule, wantRetry time.Duration) {
		t.Helper()
		ok, retry := allow(t, l, key, r)
		if ok {
			t.Fatalf("request allowed, want refused")
		}
		if retry != wantRetry {
			t.Fatalf("retryAfter = %s, want %s", retry, wantRetry)
		}
	}

	t.Run("LimitThenBlock", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		allowN(t, l, "k", rule, 50)
		clk.Advance(time.Minute)
		refused(t, l, "k", rule, 10*time.Minute) // the 51st opens the block
		// Requests during the block are refused and do not extend it.
		for i := 0; i < 9; i++ {
			clk.Advance(time.Minute)
			refused(t, l, "k", rule, time.Duration(9-i)*time.Minute)
		}
		clk.Advance(59 * time.Second)
		refused(t, l, "k", rule, time.Second)
		clk.Advance(time.Second) // exactly 10 minutes after the 51st
		allowN(t, l, "k", rule, 50)
		refused(t, l, "k", rule, 10*time.Minute)
	})

	t.Run("BlockCountsFromGoingOver", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		allowN(t, l, "k", rule, 50)
		// Going over late in the window still blocks for the full period.
		clk.Advance(9*time.Minute + 59*time.Second)
		refused(t, l, "k", rule, 10*time.Minute)
		clk.Advance(10 * time.Minute)
		allowN(t, l, "k", rule, 50)
	})

	t.Run("WindowResets", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		allowN(t, l, "k", rule, 50)
		clk.Advance(10 * time.Minute)
		allowN(t, l, "k", rule, 50)
		refused(t, l, "k", rule, 10*time.Minute)
	})

	t.Run("SlidingWindow", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		allowN(t, l, "k", rule, 1)
		clk.Advance(9 * time.Minute)
		allowN(t, l, "k", rule, 49)
		// At 10 minutes only the first request has left the window; the
		// 49 of 9 minutes still count, so one more is allowed, not 50.
		clk.Advance(time.Minute)
		allowN(t, l, "k", rule, 1)
		refused(t, l, "k", rule, 10*time.Minute)
	})

	t.Run("BoundaryStraddle", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		allowN(t, ls[0], "k", rule, 1)
		// 100 concurrent requests around the instant a fixed window
		// opened by the first would end: 49 just before, 51 just after.
		// A fixed window lets 49+50 through; at most 50 may pass in any
		// 10 minutes, the first included.
		clk.Advance(10*time.Minute - time.Second)
		before := concurrent(t, ls, "k", rule, 49)
		clk.Advance(2 * time.Second)
		after := concurrent(t, ls, "k", rule, 51)
		if before+after != rule.Limit {
			t.Fatalf("%d + %d of 100 requests allowed across the boundary, want %d in all", before, after, rule.Limit)
		}
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		small := ratelimit.Rule{Limit: 2, Window: time.Minute, Block: time.Minute}
		allowN(t, l, "a", small, 2)
		refused(t, l, "a", small, time.Minute)
		allowN(t, l, "b", small, 2)
	})

	t.Run("NoBlock", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		r := ratelimit.Rule{Limit: 3, Window: time.Minute}
		allowN(t, l, "k", r, 3)
		clk.Advance(20 * time.Second)
		refused(t, l, "k", r, 40*time.Second)
		clk.Advance(40 * time.Second)
		allowN(t, l, "k", r, 3)
	})

	t.Run("InvalidRule", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		for _, r := range []ratelimit.Rule{{}, {Limit: 1}, {Limit: 1, Window: time.Second, Block: -1}} {
			if _, _, err := l.Allow(ctx, "k", r); err == nil {
				t.Errorf("Allow(%+v) = nil error, want one", r)
			}
		}
	})

	t.Run("SharedAcrossInstances", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		for i := 0; i < 50; i++ {
			if ok, _ := allow(t, ls[i%2], "k", rule); !ok {
				t.Fatalf("request %d refused", i+1)
			}
		}
		refused(t, ls[0], "k", rule, 10*time.Minute)
		refused(t, ls[1], "k", rule, 10*time.Minute)
	})

	// Limiters may take tokens ahead (leases); what they take ahead must
	// be counted for the window around each request it lets through, in
	// every limiter. One limiter is busy for the first second of a window
	// (spreading its requests over it, fewer at the end) and then quiet; the other fills the
	// window just before its end and keeps asking across the boundary. No
	// window, whatever instant it starts at, may hold more than the limit,
	// and the pair must let through most of what one exact limiter does on
	// the same schedule.
	t.Run("NeverOverAcrossInstances", func(t *testing.T) {
		t.Parallel()
		r := ratelimit.Rule{Limit: 64, Window: 10 * time.Second}
		step := 100 * time.Millisecond
		run := func(a, b ratelimit.Limiter, clk *Clock) []time.Time {
			var allowed []time.Time
			ask := func(l ratelimit.Limiter, n int) {
				for range n {
					if ok, _ := allow(t, l, "k", r); ok {
						allowed = append(allowed, clk.Now())
					}
				}
			}
			for i := range 10 {
				ask(a, 3-2*(i/7)) // slowing down: what it took ahead lasts
				clk.Advance(step)
			}
			clk.Advance(9*time.Second - 10*step)
			ask(b, 100)
			for i := range 30 {
				clk.Advance(step)
				ask(b, 5)
				if i >= 10 {
					ask(a, 1)
				}
			}
			return allowed
		}
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		got := run(ls[0], ls[1], clk)
		checkWindows(t, got, r)
		exactClk := NewClock()
		m := ratelimit.NewMemory(exactClk.Now)
		exact := run(m, m, exactClk)
		if len(got) < len(exact)*9/10 {
			t.Fatalf("%d requests let through, an exact limiter lets %d", len(got), len(exact))
		}
		t.Logf("%d let through, exact %d", len(got), len(exact))
	})

	// A token one limiter took ahead and spent later counts for the window
	// around its use, not around when it was taken, even while that
	// limiter is silent and has not settled: here one limiter spends
	// tokens one by one, falls silent, and the other fills the window and
	// then asks every 10ms across the moment the first one's tokens were
	// taken one window earlier. The first limiter stops after 17 to 20
	// requests, so that whatever its lease sizes, one of the runs ends
	// with a lease spent and unsettled.
	t.Run("LeaseCountedAtUse", func(t *testing.T) {
		t.Parallel()
		r := ratelimit.Rule{Limit: 64, Window: 10 * time.Second}
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		for stop := 17; stop <= 20; stop++ {
			key := fmt.Sprintf("k%d", stop)
			var got []time.Time
			ask := func(l ratelimit.Limiter) {
				if ok, _ := allow(t, l, key, r); ok {
					got = append(got, clk.Now())
				}
			}
			for range stop {
				ask(ls[0])
				clk.Advance(50 * time.Millisecond)
			}
			clk.Advance(9*time.Second - time.Duration(stop)*50*time.Millisecond)
			for range r.Limit {
				ask(ls[1])
			}
			for range 250 {
				clk.Advance(10 * time.Millisecond)
				ask(ls[1])
			}
			checkWindows(t, got, r)
			// The second limiter did get in as the first one's requests
			// left the window (all but a last lease's worth).
			if want := r.Limit + stop - r.Limit/16; len(got) < want {
				t.Fatalf("%d requests let through over %s, want at least %d", len(got), 2*r.Window, want)
			}
			clk.Advance(r.Window)
		}
	})

	// Tokens a limiter took ahead and did not spend go back to the shared
	// count: what one limiter left unspent, the other or itself can use.
	t.Run("UnspentGivenBack", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		r := ratelimit.Rule{Limit: 50, Window: 10 * time.Minute}
		allowN(t, ls[0], "k", r, 10)
		clk.Advance(2 * time.Second)
		n := 10
		for _, l := range []ratelimit.Limiter{ls[1], ls[0], ls[1]} {
			for {
				ok, _ := allow(t, l, "k", r)
				if !ok {
					break
				}
				n++
			}
		}
		if n != r.Limit {
			t.Fatalf("%d requests let through in one window, want %d", n, r.Limit)
		}
	})

	// A key blocked through one limiter is blocked in all, from that
	// moment, without extending it.
	t.Run("BlockSeenByOther", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		allowN(t, ls[0], "k", rule, 30)
		allowN(t, ls[1], "k", rule, 20)
		clk.Advance(time.Second)
		refused(t, ls[0], "k", rule, 10*time.Minute)
		clk.Advance(time.Minute)
		refused(t, ls[1], "k", rule, 9*time.Minute)
		refused(t, ls[0], "k", rule, 9*time.Minute)
		clk.Advance(9 * time.Minute)
		allowN(t, ls[1], "k", rule, 50)
		refused(t, ls[0], "k", rule, 10*time.Minute)
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		if allowed := concurrent(t, ls, "k", rule, 80); allowed != rule.Limit {
			t.Fatalf("%d of 80 concurrent requests allowed, want exactly %d", allowed, rule.Limit)
		}
	})
}

// concurrent makes n requests for key at once, spread over the limiters
// and 8 workers, and returns how many were allowed.
func concurrent(t *testing.T, ls []ratelimit.Limiter, key string, r ratelimit.Rule, n int) int {
	t.Helper()
	const workers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
		errs    []error
		next    = make(chan struct{}, n)
	)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(l ratelimit.Limiter) {
			defer wg.Done()
			for range next {
				ok, _, err := l.Allow(context.Background(), key, r)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					allowed++
				}
				mu.Unlock()
			}
		}(ls[w%len(ls)])
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Allow: %v", errs[0])
	}
	return allowed
}

// checkWindows fails t when more than r.Limit of the times allowed fall in
// one window ending at any of them.
func checkWindows(t *testing.T, allowed []time.Time, r ratelimit.Rule) {
	t.Helper()
	for i, at := range allowed {
		n := 0
		for _, b := range allowed[:i+1] {
			if b.After(at.Add(-r.Window)) {
				n++
			}
		}
		if n > r.Limit {
			t.Fatalf("%d requests let through in the %s up to %s, limit %d", n, r.Window, at.Sub(NewClock().Now()), r.Limit)
		}
	}
}
