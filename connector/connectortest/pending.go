package connectortest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// EraseUntilDone calls Erase the way the pipeline does with a target that
// confirms asynchronously: while it answers connector.Pending, it waits
// (at most maxWait, however long the connector asks: tests need not wait as
// long as production) and calls again with the checkpoint it was given. It
// makes at most maxCalls calls and returns the sum of their reports (rows
// add up; retained rows keep the largest count) with the last error.
func EraseUntilDone(ctx context.Context, c connector.Connector, s connector.Subject, maxCalls int, maxWait time.Duration) (lethe.Report, error) {
	var sum lethe.Report
	for range maxCalls {
		r, err := c.Erase(ctx, s)
		sum = addReport(sum, r)
		var p *connector.PendingError
		if !errors.As(err, &p) {
			return sum, err
		}
		s.Checkpoint = p.Checkpoint
		t := time.NewTimer(min(max(p.After, 0), maxWait))
		select {
		case <-ctx.Done():
			t.Stop()
			return sum, ctx.Err()
		case <-t.C:
		}
	}
	return sum, fmt.Errorf("erase still pending after %d calls", maxCalls)
}

func addReport(acc, r lethe.Report) lethe.Report {
	for _, it := range r.Items {
		found := false
		for i := range acc.Items {
			cur := &acc.Items[i]
			if cur.Object == it.Object && cur.Action == it.Action {
				if it.Action == lethe.ActionRetain {
					cur.Rows = max(cur.Rows, it.Rows)
				} else {
					cur.Rows += it.Rows
				}
				found = true
				break
			}
		}
		if !found {
			acc.Items = append(acc.Items, it)
		}
	}
	return acc
}

// erase is how the suite erases: through pending answers, so connectors
// of asynchronous targets pass the same checks.
func (f *fixture) erase(s connector.Subject) (lethe.Report, error) {
	return EraseUntilDone(bg(), f.Connector, s, 50, 100*time.Millisecond)
}
