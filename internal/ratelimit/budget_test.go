package ratelimit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// countingRateLimits counts the store calls (each one transaction) a
// Limiter makes on a real store.
type countingRateLimits struct {
	store.RateLimits
	calls atomic.Int64
}

func (c *countingRateLimits) TakeRateLimit(ctx context.Context, p store.TakeRateLimitParams) (int, time.Duration, error) {
	c.calls.Add(1)
	return c.RateLimits.TakeRateLimit(ctx, p)
}

// busy is a client well within a high limit, asking every millisecond.
var busy = ratelimit.Rule{Limit: 1_000_000, Window: time.Minute, Block: time.Minute}

// A busy key writes its row once per lease, not per request; a key asking
// less often than once per lease period still takes one token per call.
func TestStoreCallBudget(t *testing.T) {
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		for _, tc := range []struct {
			name   string
			every  time.Duration
			n      int
			budget int64
		}{
			// 2,000 requests over 2 s: leases double to 1,024, a second's
			// worth, then one lease a second.
			{"busy", time.Millisecond, 2000, 12},
			{"slow", 2 * time.Second, 20, 20},
		} {
			clk := ratelimittest.NewClock()
			c := &countingRateLimits{RateLimits: st}
			l := ratelimit.NewStore(c, clk.Now)
			for i := range tc.n {
				if ok, _, err := l.Allow(ctx, tc.name, busy); err != nil || !ok {
					t.Fatalf("%s: request %d: allowed %v, %v", tc.name, i, ok, err)
				}
				clk.Advance(tc.every)
			}
			if got := c.calls.Load(); got > tc.budget {
				t.Errorf("%s: %d store calls for %d requests, budget %d", tc.name, got, tc.n, tc.budget)
			}
			t.Logf("%s: %d store calls for %d requests", tc.name, c.calls.Load(), tc.n)
		}
	})
}

// BenchmarkAllow measures a busy key (one request per millisecond of a
// settable clock) on the Memory limiter and on Store over each dialect,
// reporting store calls per Allow and ns/op relative to Memory in the
// same run.
func BenchmarkAllow(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, l ratelimit.Limiter, clk *ratelimittest.Clock) time.Duration {
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if _, _, err := l.Allow(ctx, "k", busy); err != nil {
				b.Fatal(err)
			}
			clk.Advance(time.Millisecond)
		}
		return time.Since(start)
	}
	clk := ratelimittest.NewClock()
	var memNs float64
	b.Run("memory", func(b *testing.B) {
		d := run(b, ratelimit.NewMemory(clk.Now), clk)
		memNs = float64(d.Nanoseconds()) / float64(b.N)
	})
	for _, dialect := range testdb.Dialects {
		b.Run(dialect, func(b *testing.B) {
			st := testdb.OpenStore(b, dialect)
			c := &countingRateLimits{RateLimits: st}
			clk := ratelimittest.NewClock()
			d := run(b, ratelimit.NewStore(c, clk.Now), clk)
			b.ReportMetric(float64(c.calls.Load())/float64(b.N), "calls/op")
			if memNs > 0 {
				b.ReportMetric(float64(d.Nanoseconds())/float64(b.N)/memNs, "x-memory")
			}
		})
	}
}
