package sqlconn_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// budget is the most one step may send to the target for one subject of
// the shop: statements, commits and statements outside a transaction.
type budget struct{ statements, commits, autocommit int64 }

// connectorBudget: what the pipeline's calls for one request cost on the
// shop map (7 tables, 3 matched case-insensitively, 1 by phone), as
// reached; before the single-transaction erasure they were resolve 13,
// plan 11, erase 35 with 6 commits, changed 7, verify 12, and before the
// candidate queries of a step were one statement resolve 10, plan 5, erase
// 18 (MariaDB 22), changed 5, verify 7; resolve was 8 before its rounds
// read the tables' followed columns in one statement. Erase of one subject is one
// transaction (hand-written SQL: 8 statements, 1 commit); its count
// includes the 3 statements that create the ledger tables on a
// connector's first erasure, and the one candidate statement of the 4
// matched columns. MariaDB deletes in two statements per table (no LIMIT
// in an IN subquery, no DELETE ... RETURNING needed there: see
// deleteByKeys).
var connectorBudget = map[string]map[string]budget{
	"sqlite":   {"resolve": {4, 0, 4}, "plan": {2, 0, 2}, "erase": {15, 1, 6}, "changed": {4, 0, 4}, "verify": {4, 0, 4}},
	"postgres": {"resolve": {4, 0, 4}, "plan": {2, 0, 2}, "erase": {15, 1, 6}, "changed": {4, 0, 4}, "verify": {4, 0, 4}},
	"mysql":    {"resolve": {4, 0, 4}, "plan": {2, 0, 2}, "erase": {19, 1, 5}, "changed": {4, 0, 4}, "verify": {4, 0, 4}},
}

// requestBudget: what the pipeline sends the target for one request that
// goes straight through: resolve, erase and verify. The connector's reports
// are full (connector.FullReporter), so it is not planned, and its ledger
// is not read after a first erasure that succeeded; with them it was 45
// (MariaDB 49), 35 (39) with a candidate query per column, and 27 (31)
// with a read of the followed columns per table.
var requestBudget = map[string]budget{
	"sqlite":   {23, 1, 14},
	"postgres": {23, 1, 14},
	"mysql":    {27, 1, 13},
}

// batchBudget: an EraseBatch of three subjects, in total: one
// transaction and the statements of one subject's Erase (one candidate
// statement for every column and all three, one statement per table for
// all three); 28 (MariaDB 43) with a statement per table and subject.
var batchBudget = map[string]budget{
	"sqlite":   {12, 1, 5},
	"postgres": {12, 1, 5},
	"mysql":    {17, 1, 5},
}

// TestStatementBudget counts, on the target connection, what each step
// of one request costs, and fails when a step exceeds its budget.
func TestStatementBudget(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s, dsn := newShop(t, b)
		var n counts
		c, err := sqlconn.NewOpenedBy(connector.Target{Name: "shop", Kind: sqlconn.Kind, Decode: func(v any) error {
			return yaml.Unmarshal([]byte(fmt.Sprintf(shopMap, b.Driver, strconv.Quote(dsn), 1000)), v)
		}}, countingOpen(t, &n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Validate(ctx); err != nil {
			t.Fatal(err)
		}
		alice := people[0]
		given := []lethe.Identity{{Type: lethe.IdentityEmail, Value: alice.Email.(string)}}
		subj := connector.Subject{RequestID: "req-budget", Identities: given}
		var request snapshotCounts
		step := func(name string, f func() error) {
			t.Helper()
			before := n.snap()
			if err := f(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got := n.snap().minus(before)
			if name == "resolve" || name == "erase" || name == "verify" {
				request = snapshotCounts{request.statements + got.statements, request.commits + got.commits, request.autocommit + got.autocommit}
			}
			want := connectorBudget[b.Driver][name]
			t.Logf("%s: %d statements, %d commits, %d outside a transaction", name, got.statements, got.commits, got.autocommit)
			if got.statements > want.statements || got.commits > want.commits || got.autocommit > want.autocommit {
				t.Errorf("%s: %d statements, %d commits, %d outside a transaction; budget %d, %d, %d",
					name, got.statements, got.commits, got.autocommit, want.statements, want.commits, want.autocommit)
			}
		}
		var closed bool
		step("resolve", func() error {
			r, err := c.ResolveSubject(ctx, subj)
			subj.Identities = append(subj.Identities, r.Identities...)
			closed = r.Closed
			return err
		})
		// Closed, as it says: asked again with what it was given and
		// found, it finds nothing new (the pipeline relies on it to not
		// ask again).
		again, err := c.ResolveSubject(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if !closed || !again.Closed || len(again.Identities) != 0 {
			t.Errorf("resolve closed %v, then %v finding %d more identities; want closed, and nothing more", closed, again.Closed, len(again.Identities))
		}
		step("plan", func() error { _, err := c.Plan(ctx, subj); return err })
		step("erase", func() error {
			rep, err := c.Erase(ctx, subj)
			if err == nil && rep.Total() != 15 {
				err = fmt.Errorf("erased %d rows, want 15", rep.Total())
			}
			return err
		})
		step("changed", func() error { _, err := c.Changed(ctx, subj); return err })
		step("verify", func() error { return c.Verify(ctx, subj) })
		if s.remaining(t, alice.ID, alice.Email) != 0 {
			t.Errorf("alice's rows remain")
		}
		t.Logf("request (resolve, erase, verify): %d statements, %d commits, %d outside a transaction", request.statements, request.commits, request.autocommit)
		if want := requestBudget[b.Driver]; request.statements > want.statements || request.commits > want.commits || request.autocommit > want.autocommit {
			t.Errorf("request (resolve, erase, verify): %d statements, %d commits, %d outside a transaction; budget %d, %d, %d",
				request.statements, request.commits, request.autocommit, want.statements, want.commits, want.autocommit)
		}

		// Three more subjects erased in one batch: one transaction, and
		// per subject the table statements alone.
		var batch []connector.Subject
		for i, p := range []person{people[1], people[2], people[5]} {
			sub := connector.Subject{RequestID: "req-budget-" + strconv.Itoa(i),
				Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: p.Email.(string)}}}
			r, err := c.ResolveSubject(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			sub.Identities = append(sub.Identities, r.Identities...)
			batch = append(batch, sub)
		}
		before := n.snap()
		if _, err := c.EraseBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		got := n.snap().minus(before)
		t.Logf("erase batch of %d: %d statements, %d commits, %d outside a transaction", len(batch), got.statements, got.commits, got.autocommit)
		if want := batchBudget[b.Driver]; got.statements > want.statements || got.commits > want.commits || got.autocommit > want.autocommit {
			t.Errorf("erase batch of %d: %d statements, %d commits, %d outside a transaction; budget %d, %d, %d",
				len(batch), got.statements, got.commits, got.autocommit, want.statements, want.commits, want.autocommit)
		}
		for _, p := range []person{people[1], people[2], people[5]} {
			if n := s.remaining(t, p.ID, p.Email); n != 0 {
				t.Errorf("%s: %d rows remain after the batch", p.Name, n)
			}
		}
	})
}
