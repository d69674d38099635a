package sqlconn_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// An EraseBatch cut off after some of its transactions committed (a crash:
// its reports are lost) and run again leaves every subject erased, and
// the ledger holds for each subject exactly the rows its own Plan counted
// before: transactions shared by several subjects are recorded per
// subject, and a rolled-back one not at all.
func TestLedgerExactAcrossCrashedBatch(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		_, dsn := newShop(t, b)
		var n counts
		// Transactions of two rows: many, shared by subjects.
		c, err := sqlconn.NewOpenedBy(connector.Target{Name: "shop", Kind: sqlconn.Kind, Decode: func(v any) error {
			return yaml.Unmarshal([]byte(fmt.Sprintf(shopMap, b.Driver, strconv.Quote(dsn), 2)), v)
		}}, countingOpen(t, &n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Validate(ctx); err != nil {
			t.Fatal(err)
		}
		var subs []connector.Subject
		var plans []string
		var planned int64
		for i, p := range []person{people[0], people[1], people[2]} {
			sub := connector.Subject{RequestID: fmt.Sprintf("req-cut-%d", i),
				Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: p.Email.(string)}}}
			found, err := c.Resolve(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			sub.Identities = append(sub.Identities, found...)
			plan, err := c.Plan(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			subs, plans = append(subs, sub), append(plans, reportLines(plan))
			planned += changedRows(plan)
		}
		// Two runs die, each right after its third commit: the statement
		// after it fails on the canceled context.
		for range 2 {
			cctx, cancel := context.WithCancel(ctx)
			start := n.commits.Load()
			n.afterCommit = func(k int64) {
				if k-start == 3 {
					cancel()
				}
			}
			if _, err := c.EraseBatch(cctx, subs); err == nil {
				t.Fatal("the batch was meant to be cut off")
			}
			n.afterCommit = nil
			cancel()
		}
		var sofar int64
		for _, sub := range subs {
			rep, err := c.Changed(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			sofar += changedRows(rep)
		}
		if sofar != 12 {
			t.Errorf("after two runs cut off after 3 commits of 2 rows: the ledger holds %d rows, want 12", sofar)
		}
		if sofar >= planned {
			t.Fatalf("the cut runs erased everything (%d of %d rows): nothing left to test", sofar, planned)
		}
		if _, err := c.EraseBatch(ctx, subs); err != nil {
			t.Fatal(err)
		}
		for i, sub := range subs {
			rep, err := c.Changed(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			if got := reportLines(rep); got != plans[i] {
				t.Errorf("subject %d: the ledger says\n  %s\nits Plan said\n  %s", i, got, plans[i])
			}
			if err := c.Verify(ctx, sub); err != nil {
				t.Errorf("subject %d: %v", i, err)
			}
		}
	})
}

func reportLines(r lethe.Report) string {
	var out []string
	for _, it := range r.Items {
		out = append(out, fmt.Sprintf("%s:%s:%d", it.Object, it.Action, it.Rows))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func changedRows(r lethe.Report) int64 {
	var n int64
	for _, it := range r.Items {
		if it.Action != lethe.ActionRetain {
			n += it.Rows
		}
	}
	return n
}
