package testdb

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURL returns the test Redis URL (LETHE_TEST_REDIS), skipping the test
// when it is unset. Tests share the server; use RedisPrefix to keep their
// keys apart.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	return Service(tb, EnvRedis)
}

// RedisPrefix returns a key prefix unique to this test and deletes every key
// under it after the test, so tests in parallel never see each other's keys.
func RedisPrefix(tb testing.TB, url string) string {
	tb.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("parse %s: %v", EnvRedis, err)
	}
	prefix := "lethe_test:" + randomHex(8) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := redis.NewClient(opts)
		defer c.Close()
		iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				tb.Logf("delete redis key: %v", err)
				return
			}
		}
		if err := iter.Err(); err != nil {
			tb.Logf("scan redis keys: %v", err)
		}
	})
	return prefix
}
