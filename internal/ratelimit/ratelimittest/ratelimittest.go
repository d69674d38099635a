// Package ratelimittest is the conformance suite every ratelimit.Limiter
// runs, and a settable clock for tests that must cross a window or a block
// without sleeping.
package ratelimittest

import (
	"context"
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

	t.Run("FixedWindowFromFirstRequest", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		l := open(t, clk.Now, 1)[0]
		allowN(t, l, "k", rule, 1)
		clk.Advance(9 * time.Minute)
		allowN(t, l, "k", rule, 49)
		// The window opened by the first request ends at 10 minutes, so
		// the count starts over then, not 10 minutes after the last one.
		clk.Advance(time.Minute)
		allowN(t, l, "k", rule, 50)
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

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		clk := NewClock()
		ls := open(t, clk.Now, 2)
		const workers, each = 8, 10
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			allowed int
			errs    []error
		)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(l ratelimit.Limiter) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					ok, _, err := l.Allow(ctx, "k", rule)
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else if ok {
						allowed++
					}
					mu.Unlock()
				}
			}(ls[w%2])
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("Allow: %v", errs[0])
		}
		if allowed != rule.Limit {
			t.Fatalf("%d of %d concurrent requests allowed, want exactly %d", allowed, workers*each, rule.Limit)
		}
	})
}
