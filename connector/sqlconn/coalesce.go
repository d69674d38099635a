package sqlconn

import (
	"context"
	"slices"
	"sync"
)

// Candidate queries of concurrent operations are run as one.
//
// Without an index on its match expression (lower(trim(email)) for a
// case-insensitive column), a candidate query reads the whole table, and
// each request asks several times (resolve, plan, erase, verify): many
// requests in flight meant many scans at once, each finding a row or two.
// A scan for ten values costs what a scan for one does, so while one
// candidate statement runs, the lookups that arrive wait and then run
// together, the first of them running one statement for all (every
// column's values in it, see lookupNow).
//
// What each operation sees is unchanged:
//   - Fresh: a lookup joins only a query that has not started, so its rows
//     are read after it asked (a verify sees what the erase before it
//     committed).
//   - Its own: the query's rows are confirmed per column and canonical
//     value, and each operation keeps those of its own values; the
//     others' never leave this process's memory.
//   - Its own errors: when a shared query fails, every operation runs its
//     own alone, so an error (its text, its limit on rows) is the one the
//     operation would have had, quoting no other subject's values.
//
// An idle connector runs a lookup at once: nothing waits for company.

// maxCoalesced bounds the values of one shared query (an operation with
// more runs alone).
const maxCoalesced = 100

// memoKeyCol is one identity column of one table.
type memoKeyCol struct {
	t   *table
	col string
}

// lookupGroup gathers the lookups of one connector; canon names each
// value among every column's (lookupArg.key).
type lookupGroup struct {
	mu      sync.Mutex
	running bool
	next    *sharedLookup // gathering while a query runs
}

type sharedLookup struct {
	canon  []string
	args   []any
	n      int           // operations in it
	start  chan struct{} // closed when its leader may run it
	done   chan struct{} // closed when found and err are set
	found  map[string][][]any
	failed bool
}

// do returns run(canon, args), or its part of a query run for it and
// others; run must confirm rows per canonical value.
func (g *lookupGroup) do(ctx context.Context, canon []string, args []any, run func(canon []string, args []any) (map[string][][]any, error)) (map[string][][]any, error) {
	g.mu.Lock()
	if !g.running {
		g.running = true
		g.mu.Unlock()
		defer g.finish()
		return run(canon, args)
	}
	b := g.next
	if b != nil && len(b.canon)+len(canon) > maxCoalesced || b == nil && len(canon) > maxCoalesced {
		g.mu.Unlock()
		return run(canon, args) // too many values to share a query
	}
	leader := b == nil
	if leader {
		b = &sharedLookup{start: make(chan struct{}), done: make(chan struct{})}
		g.next = b
	}
	for i, cv := range canon {
		if !slices.Contains(b.canon, cv) {
			b.canon = append(b.canon, cv)
			b.args = append(b.args, args[i])
		}
	}
	b.n++
	g.mu.Unlock()

	if leader {
		// Even when ctx ends meanwhile: the others wait for this query.
		<-b.start // the running query ended; g.running stays true for this one
		g.mu.Lock()
		g.next = nil // joined by no one from here on
		g.mu.Unlock()
		found, err := b.run(g, run)
		if err != nil && b.n > 1 {
			return run(canon, args)
		}
		return found, err
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err() // the query goes on for the others
	}
	if b.failed {
		return run(canon, args)
	}
	return b.found, nil
}

// finish ends the running query: the gathered one runs next, or the
// group is idle.
func (g *lookupGroup) finish() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next != nil {
		close(g.next.start)
		return
	}
	g.running = false
}

// run runs b for its operations; the others are released and the group
// handed on even if run panics.
func (b *sharedLookup) run(g *lookupGroup, run func(canon []string, args []any) (map[string][][]any, error)) (found map[string][][]any, err error) {
	b.failed = true
	defer func() {
		close(b.done)
		g.finish()
	}()
	found, err = run(b.canon, b.args)
	b.found, b.failed = found, err != nil
	return found, err
}
