package ratelimit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func TestStoreLimiter(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ratelimittest.Exercise(t, func(t *testing.T, now func() time.Time, n int) []ratelimit.Limiter {
			s, another := b.Open(t, testdb.Keyring(t))
			ls := []ratelimit.Limiter{ratelimit.NewStore(s, now)}
			for len(ls) < n {
				ls = append(ls, ratelimit.NewStore(another(), now))
			}
			return ls
		})
	})
}

// Limiters sharing state are one Memory: it is shared by the process.
func TestMemoryLimiter(t *testing.T) {
	ratelimittest.Exercise(t, func(t *testing.T, now func() time.Time, n int) []ratelimit.Limiter {
		m := ratelimit.NewMemory(now)
		ls := make([]ratelimit.Limiter, n)
		for i := range ls {
			ls[i] = m
		}
		return ls
	})
}

func TestRedisLimiter(t *testing.T) {
	url := testdb.RedisURL(t)
	ratelimittest.Exercise(t, func(t *testing.T, now func() time.Time, n int) []ratelimit.Limiter {
		prefix := testdb.RedisPrefix(t, url)
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		var ls []ratelimit.Limiter
		for range n {
			c := redis.NewClient(opts)
			t.Cleanup(func() { c.Close() })
			ls = append(ls, ratelimit.NewRedis(c, prefix, now))
		}
		return ls
	})
}

func TestOpenRedis(t *testing.T) {
	url := testdb.RedisURL(t)
	ctx := context.Background()
	r, err := ratelimit.OpenRedis(ctx, url, nil)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	defer r.Close()
	if _, err := ratelimit.OpenRedis(ctx, "redis://:s3cret@[::1", nil); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("OpenRedis(bad URL) = %v, want an error that does not echo the password", err)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {10 * time.Minute, 600},
	} {
		if got := ratelimit.RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestRules(t *testing.T) {
	def := ratelimit.Rule{Limit: 1, Window: time.Second}
	other := ratelimit.Rule{Limit: 2, Window: time.Second}
	rs := ratelimit.Rules{Default: def, PerClient: map[string]ratelimit.Rule{"c1": other}}
	if rs.For("c1") != other || rs.For("c2") != def {
		t.Fatalf("For picks the wrong rule")
	}
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	rs.PerClient["bad"] = ratelimit.Rule{}
	if err := rs.Validate(); err == nil {
		t.Fatal("Validate accepted a zero rule")
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	k := testdb.Keyring(t)
	for _, b := range profiletest.Backends() {
		s, _ := b.Open(t, k)
		want := map[string]string{"": "*ratelimit.Store", "database": "*ratelimit.Store", "memory": "*ratelimit.Memory"}
		if s.Dialect() == "sqlite" {
			// One process per SQLite database: nothing to share.
			want[""] = "*ratelimit.Memory"
		}
		for spec, typ := range want {
			l, closeFn, err := ratelimit.Open(ctx, spec, s, nil)
			if err != nil {
				t.Fatalf("%s: Open(%q): %v", b.Name, spec, err)
			}
			if got := fmt.Sprintf("%T", l); got != typ {
				t.Fatalf("%s: Open(%q) = %s, want %s", b.Name, spec, got, typ)
			}
			closeFn()
		}
	}
	s, _ := profiletest.Backends()[0].Open(t, k)
	if _, _, err := ratelimit.Open(ctx, "memcache://u:pw@h", s, nil); err == nil || strings.Contains(err.Error(), "pw") {
		t.Fatalf("Open(unknown) = %v", err)
	}
	url := testdb.RedisURL(t)
	l, closeFn, err := ratelimit.Open(ctx, url, s, nil)
	if err != nil {
		t.Fatalf("Open(redis): %v", err)
	}
	defer closeFn()
	if _, ok := l.(*ratelimit.Redis); !ok {
		t.Fatalf("Open(redis) = %T", l)
	}
}
