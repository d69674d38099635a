package pipeline

import (
	"errors"
	"sync"
)

// gather runs the calls of concurrent callers in groups: while one group
// runs, the calls arriving queue up, and the next group takes them all
// (up to max, one per key). Nothing waits for a group to fill: a lone
// call is a group of one. The caller that finds no group running leads:
// it runs the group that holds its own call, then hands the lead to the
// oldest caller still waiting, so no caller works for others after its
// own call ended. Connector batches (batcher) and shared store
// transactions (txGroup) are both gathered this way.
type gather[T any] struct {
	max int

	mu    sync.Mutex
	queue []*gathered[T]
	busy  bool
}

type gathered[T any] struct {
	key  string
	v    T
	done chan struct{} // closed when its group has run
	lead chan struct{} // closed when this caller is to lead
}

// do queues v under key and returns once a group holding it has run,
// whoever ran it; run gets each group's values in arrival order, and
// must first set every value's result to errAbandoned.
func (g *gather[T]) do(key string, v T, run func(group []T)) {
	c := &gathered[T]{key: key, v: v, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	leading := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !leading {
		select {
		case <-c.done:
			return
		case <-c.lead:
		}
	}
	// A leader is at the front of the queue, so the group it takes holds
	// its own call.
	group := g.take()
	// Even when run panics, the group's callers wake (run sets each
	// result to a failure before it starts) and the lead passes on:
	// otherwise every later call would wait for a leader that is gone.
	defer func() {
		for _, m := range group {
			close(m.done)
		}
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.busy = false
		} else {
			close(g.queue[0].lead)
		}
		g.mu.Unlock()
	}()
	vs := make([]T, len(group))
	for i, m := range group {
		vs[i] = m.v
	}
	run(vs)
}

// errAbandoned is the result of a call whose group stopped before giving
// it one (its leader panicked).
var errAbandoned = errors.New("pipeline: the batch holding this call stopped before it ended")

// take removes the next group from the queue: up to max calls in arrival
// order, one per key (a second call of a key already in the group, such
// as a duplicate job of a request, waits for the next group).
func (g *gather[T]) take() []*gathered[T] {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := map[string]bool{}
	var group, rest []*gathered[T]
	for _, c := range g.queue {
		if len(group) < g.max && !seen[c.key] {
			seen[c.key] = true
			group = append(group, c)
		} else {
			rest = append(rest, c)
		}
	}
	g.queue = rest
	return group
}

// queued reports how many calls wait for a group (for tests).
func (g *gather[T]) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}
