package sqlconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Lookups arriving while one runs share the next query, each getting the
// rows of its own values; a shared query that fails is run again by each
// operation alone.
func TestLookupsArrivingTogetherShareOneQuery(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared query fails %v", fail), func(t *testing.T) {
			var g lookupGroup
			var mu sync.Mutex
			var queries [][]string
			release := make(chan struct{})
			run := func(canon []string, args []any) (map[string][][]any, error) {
				mu.Lock()
				queries = append(queries, slices.Clone(canon))
				mu.Unlock()
				if canon[0] == "first" {
					<-release
				}
				if fail && len(canon) > 1 {
					return nil, errors.New("shared query failed")
				}
				out := map[string][][]any{}
				for _, cv := range canon {
					out[cv] = [][]any{{"key of " + cv}}
				}
				return out, nil
			}
			firstDone := make(chan struct{})
			go func() {
				defer close(firstDone)
				if _, err := g.do(context.Background(), []string{"first"}, []any{"first"}, run); err != nil {
					t.Error(err)
				}
			}()
			for { // the first query is running
				mu.Lock()
				n := len(queries)
				mu.Unlock()
				if n == 1 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			const callers = 5
			var wg sync.WaitGroup
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cv := fmt.Sprint("v", i)
					found, err := g.do(context.Background(), []string{cv}, []any{cv}, run)
					if err != nil {
						t.Error(err)
						return
					}
					if got := found[cv]; len(got) != 1 || got[0][0] != "key of "+cv {
						t.Errorf("%s: got %v", cv, got)
					}
				}()
			}
			for { // all five are waiting for the next query
				g.mu.Lock()
				n := 0
				if g.next != nil {
					n = g.next.n
				}
				g.mu.Unlock()
				if n == callers {
					break
				}
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			<-firstDone
			want := 2 // the first, then one for the five
			if fail {
				want += callers // each again alone
			}
			if len(queries) != want || len(queries[1]) != callers {
				t.Errorf("queries = %v, want the first, one of all %d values%s", queries, callers, map[bool]string{true: ", then one per value", false: ""}[fail])
			}
			if g.running || g.next != nil {
				t.Error("the column is not idle after every lookup ended")
			}
		})
	}
}
