package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter whose state is in Redis, for deployments that want
// rate limiting off the database. Each key is a hash (the block) and a
// sorted set (the hits within the window) updated by one Lua script, so a
// check-and-count is atomic across every lethe process.
//
// Times come from the process clock (passed to the script), not from the
// Redis server, so the clock can be injected in tests; processes sharing a
// Redis should run NTP, as skew shifts window edges by the skew.
type Redis struct {
	client redis.Scripter
	prefix string
	now    func() time.Time
	close  func() error
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Limiter over client. Every key is stored under prefix
// (e.g. "lethe:ratelimit:"). now is the clock (nil: time.Now).
func NewRedis(client redis.Scripter, prefix string, now func() time.Time) *Redis {
	if now == nil {
		now = time.Now
	}
	return &Redis{client: client, prefix: prefix, now: now, close: func() error { return nil }}
}

// DefaultRedisPrefix is the key prefix OpenRedis uses.
const DefaultRedisPrefix = "lethe:ratelimit:"

// OpenRedis connects to the Redis named by a redis:// or rediss:// URL (as
// given to --ratelimit), checks that it answers, and returns a Limiter that
// owns the connection (Close releases it).
func OpenRedis(ctx context.Context, url string, now func() time.Time) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The URL may hold a password; do not echo it.
		return nil, errors.New("rate limit: invalid redis URL")
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("rate limit: redis: %w", err)
	}
	r := NewRedis(c, DefaultRedisPrefix, now)
	r.close = c.Close
	return r, nil
}

// Close releases the connection if OpenRedis made it.
func (r *Redis) Close() error { return r.close() }

// takeScript is the Redis form of store.RateLimits.TakeRateLimit. KEYS[1]
// is a hash: b = blocked until, q = a sequence naming each hit; KEYS[2] a
// sorted set of the hits let through, scored by time (all unix
// milliseconds). string.format keeps the numbers integral: Lua would
// otherwise print large ones in exponent form.
var takeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local block = tonumber(ARGV[4])
local blocked = tonumber(redis.call('HGET', KEYS[1], 'b'))
if blocked and now < blocked then
  return {0, blocked - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now - window))
local n = redis.call('ZCARD', KEYS[2])
if n < limit then
  local seq = redis.call('HINCRBY', KEYS[1], 'q', 1)
  redis.call('ZADD', KEYS[2], string.format('%d', now), string.format('%d', seq))
  redis.call('HDEL', KEYS[1], 'b')
  redis.call('PEXPIRE', KEYS[2], string.format('%d', window))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', window))
  return {1, 0}
end
if block > 0 then
  redis.call('HSET', KEYS[1], 'b', string.format('%d', now + block))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(block, window)))
  return {0, block}
end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
`)

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, rule Rule) (bool, time.Duration, error) {
	if err := rule.Validate(); err != nil {
		return false, 0, err
	}
	if key == "" {
		return false, 0, errors.New("rate limit: empty key")
	}
	res, err := takeScript.Run(ctx, r.client, []string{r.prefix + key, r.prefix + key + ":hits"},
		r.now().UnixMilli(), rule.Limit, ceilMillis(rule.Window), ceilMillis(rule.Block)).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: redis: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("rate limit: redis: unexpected reply of %d values", len(res))
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

// ceilMillis rounds d up to whole milliseconds, Redis's resolution, so a
// sub-millisecond window or block never becomes zero.
func ceilMillis(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}
