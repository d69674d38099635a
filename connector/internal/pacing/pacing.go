// Package pacing says how long lethe's HTTP connectors (webhook,
// processor) wait before calling a target again: the wait a throttled
// target asks for in Retry-After, and the doubling wait between polls of
// an erasure still in progress.
package pacing

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter parses a Retry-After value (seconds or an HTTP date) at now,
// clamped to [1s, limit]. ok is false when v is empty or neither form.
func RetryAfter(v string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, time.Second), limit), true
}

// Backoff is the wait before the next poll when polls were made already:
// first, doubled once for each of them, at most limit.
func Backoff(first, limit time.Duration, polls int) time.Duration {
	d := first
	for range min(polls, 30) {
		d *= 2
		if d >= limit {
			return limit
		}
	}
	return d
}
