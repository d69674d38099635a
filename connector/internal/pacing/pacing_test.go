package pacing

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	const limit = 2 * time.Hour
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"600":    10 * time.Minute,
		"0":      time.Second, // never a busy loop
		"999999": limit,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
	} {
		if got, ok := RetryAfter(in, now, limit); !ok || got != want {
			t.Errorf("%q: %s, %v; want %s", in, got, ok, want)
		}
	}
	if _, ok := RetryAfter("soon", now, limit); ok {
		t.Error("garbage accepted")
	}
}
