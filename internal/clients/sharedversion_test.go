package clients

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedVersionIsFresh: calls that arrive while a client's auth
// version is being read wait for the next read, which they share, and
// never take the answer of the read in flight, which may have started
// before a change they must see.
func TestSharedVersionIsFresh(t *testing.T) {
	c := newAuthCache(time.Minute)
	var (
		reads   atomic.Int64
		version atomic.Value
		started = make(chan struct{}, 4)
		release = make(chan struct{})
	)
	version.Store("v1")
	read := func(context.Context, string) (string, error) {
		reads.Add(1)
		v := version.Load().(string) // what the read sees when it starts
		started <- struct{}{}
		<-release
		return v, nil
	}
	ctx := context.Background()
	got := make([]string, 4)
	var wg sync.WaitGroup
	wg.Go(func() { got[0], _ = c.sharedVersion(ctx, "c", read) })
	<-started // the first read is in flight and has read v1
	version.Store("v2")
	for i := 1; i < 4; i++ {
		wg.Go(func() { got[i], _ = c.sharedVersion(ctx, "c", read) })
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		vr := c.versions["c"]
		return vr != nil && vr.next != nil && vr.next.waiters == 3
	})
	release <- struct{}{} // the first read ends; the next starts
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		close(release)
		wg.Wait()
		t.Fatalf("the calls that arrived during the first read got %q without a read of their own", got[1:])
	}
	close(release)
	wg.Wait()
	if got[0] != "v1" {
		t.Errorf("the first call got %q, want v1", got[0])
	}
	for i := 1; i < 4; i++ {
		if got[i] != "v2" {
			t.Errorf("call %d, arrived after the change, got %q, want v2", i, got[i])
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("4 calls made %d reads, want 2", n)
	}
	// Nothing is left behind once the last read ends.
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.versions) == 0
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
