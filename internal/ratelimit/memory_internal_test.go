package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Idle keys are swept so the map holds only keys still in their window or
// block; a blocked key survives the sweep and stays blocked.
func TestMemorySweepsIdleKeys(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m := NewMemory(func() time.Time { return now })
	ctx := context.Background()
	short := Rule{Limit: 1, Window: time.Second}
	long := Rule{Limit: 1, Window: time.Second, Block: time.Hour}
	for _, k := range []string{"idle", "blocked", "blocked"} {
		m.Allow(ctx, k, long)
	}
	now = now.Add(time.Minute)
	for i := range sweepEvery {
		if ok, _, err := m.Allow(ctx, fmt.Sprint("k", i), short); !ok || err != nil {
			t.Fatalf("fresh key refused: %v", err)
		}
	}
	if _, ok := m.keys["idle"]; ok {
		t.Error("idle key kept after a sweep")
	}
	if ok, retry, _ := m.Allow(ctx, "blocked", long); ok || retry != 59*time.Minute {
		t.Errorf("blocked key after a sweep: allowed %v, retry %s; want refused for 59m", ok, retry)
	}
}
