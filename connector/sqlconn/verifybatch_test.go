package sqlconn_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// countedShop is the shop with its connector behind the counting driver.
func countedShop(t *testing.T, b testdb.TargetDB) (*shop, *sqlconn.Connector, *counts) {
	t.Helper()
	s, dsn := newShop(t, b)
	n := &counts{}
	c, err := sqlconn.NewOpenedBy(connector.Target{Name: "shop", Kind: sqlconn.Kind, Decode: func(v any) error {
		return yaml.Unmarshal([]byte(fmt.Sprintf(shopMap, b.Driver, strconv.Quote(dsn), 1000)), v)
	}}, countingOpen(t, n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, c, n
}

// erasedSubjects resolves each person from their email, as the pipeline
// does, and erases them all in one batch.
func erasedSubjects(t *testing.T, c *sqlconn.Connector, prefix string, ps ...person) []connector.Subject {
	t.Helper()
	ctx := context.Background()
	var subs []connector.Subject
	for i, p := range ps {
		sub := connector.Subject{RequestID: prefix + strconv.Itoa(i),
			Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: p.Email.(string)}}}
		r, err := c.ResolveSubject(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		sub.Identities = append(sub.Identities, r.Identities...)
		subs = append(subs, sub)
	}
	if _, err := c.EraseBatch(ctx, subs); err != nil {
		t.Fatal(err)
	}
	return subs
}

// keptKeys counts the key values the ledger keeps for a request.
func (s *shop) keptKeys(tb testing.TB, requestID string) int64 {
	tb.Helper()
	var n int64
	q := s.b.Rebind("SELECT COUNT(*) FROM lethe_erasure_keys WHERE request_id = ? AND target = ?")
	if err := s.db.QueryRow(q, requestID, "shop").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestVerifyBatchCostsOneVerify: a batch of clean subjects costs the
// statements of one Verify, however many subjects it holds (a Verify per
// subject would cost five times as much for five).
func TestVerifyBatchCostsOneVerify(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s, c, n := countedShop(t, b)
		subs := erasedSubjects(t, c, "req-vb-cost-", people...)
		for _, sub := range subs {
			if s.keptKeys(t, sub.RequestID) == 0 {
				t.Fatalf("%s: no key values kept by the erasure", sub.RequestID)
			}
		}
		cost := func(batch []connector.Subject) snapshotCounts {
			t.Helper()
			before := n.snap()
			for i, err := range c.VerifyBatch(ctx, batch) {
				if err != nil {
					t.Fatalf("subject %d of %d: %v", i, len(batch), err)
				}
			}
			return n.snap().minus(before)
		}
		one := cost(subs[:1])
		five := cost(subs[1:])
		t.Logf("verify batch of 1: %+v; of 5: %+v", one, five)
		if want := connectorBudget[b.Driver]["verify"]; one.statements > want.statements || one.commits > want.commits || one.autocommit > want.autocommit {
			t.Errorf("verify batch of 1: %+v, over the budget of one Verify %+v", one, want)
		}
		if five != one {
			t.Errorf("verify batch of 5: %+v; want what a batch of 1 costs, %+v", five, one)
		}
		for _, sub := range subs {
			if k := s.keptKeys(t, sub.RequestID); k != 0 {
				t.Errorf("%s: %d kept key values left after its verification passed", sub.RequestID, k)
			}
		}
		before := n.snap()
		for _, sub := range subs[1:] {
			if err := c.Verify(ctx, sub); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("five Verify calls: %+v", n.snap().minus(before))
	})
}

// TestVerifyBatchResidueIsItsSubjects: an order item written for bob's
// erased order after the erasure (a late writer), found only by the order
// key the ledger kept for bob's request, fails bob's answer alone, with
// the text his own Verify gives; alice and the Cyrillic alice pass, and
// only their kept keys are forgotten.
func TestVerifyBatchResidueIsItsSubjects(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s, c, n := countedShop(t, b)
		subs := erasedSubjects(t, c, "req-vb-late-", people[0], people[1], people[2])
		bob := people[1]
		s.exec(t, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			bob.ID*1000+9, bob.ID*10+1, "late", 1, bob.ID)
		for _, sub := range subs {
			if s.keptKeys(t, sub.RequestID) == 0 {
				t.Fatalf("%s: no key values kept by the erasure", sub.RequestID)
			}
		}
		before := n.snap()
		got := c.VerifyBatch(ctx, subs)
		cost := n.snap().minus(before)
		t.Logf("verify batch of 3, one with residue: %+v", cost)
		// One statement more than a clean batch: the count of the
		// subjects' rows in the table found holding some.
		if want := connectorBudget[b.Driver]["verify"]; cost.statements > want.statements+1 {
			t.Errorf("verify batch of 3 with residue: %d statements, want at most %d", cost.statements, want.statements+1)
		}
		if len(got) != len(subs) {
			t.Fatalf("%d answers for %d subjects", len(got), len(subs))
		}
		want := `target "shop": subject data remains in order_items (1 rows, delete)`
		if got[1] == nil || got[1].Error() != want {
			t.Errorf("bob: %v; want %s", got[1], want)
		}
		for _, i := range []int{0, 2} {
			if got[i] != nil {
				t.Errorf("%s: %v; want nil (clean)", subs[i].RequestID, got[i])
			}
			if k := s.keptKeys(t, subs[i].RequestID); k != 0 {
				t.Errorf("%s: %d kept key values left after its verification passed", subs[i].RequestID, k)
			}
		}
		if s.keptKeys(t, subs[1].RequestID) == 0 {
			t.Error("bob's kept keys were forgotten although his verification failed")
		}
		if own := c.Verify(ctx, subs[1]); own == nil || own.Error() != got[1].Error() {
			t.Errorf("bob's own Verify: %v; the batch said %v", own, got[1])
		}
	})
}

// TestVerifyBatchSharedPhone: alice and bob are asked for with one phone
// (alice's), so a row holding it is each one's by their own Verify, and a
// row holding bob's email is bob's alone. Each answer in a batch is the
// one the subject's own Verify gives: what bob has left never fails alice,
// the row they share fails both, each counting only their own rows, and
// the Cyrillic alice, sharing nothing, passes throughout.
func TestVerifyBatchSharedPhone(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s, c, _ := countedShop(t, b)
		phone := lethe.Identity{Type: lethe.IdentityPhone, Value: people[0].Phone.(string)}
		subs := []connector.Subject{
			{RequestID: "req-vb-phone-alice", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: people[0].Email.(string)}, phone}},
			{RequestID: "req-vb-phone-bob", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: people[1].Email.(string)}, phone}},
			{RequestID: "req-vb-phone-cyrillic", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: people[2].Email.(string)}}},
		}
		if _, err := c.EraseBatch(ctx, subs); err != nil {
			t.Fatal(err)
		}
		check := func(step string, want []string) {
			t.Helper()
			got := c.VerifyBatch(ctx, subs)
			for i, sub := range subs {
				var g string
				if got[i] != nil {
					g = got[i].Error()
				}
				if g != want[i] {
					t.Errorf("%s: %s: %q; want %q", step, sub.RequestID, g, want[i])
				}
				var own string
				if err := c.Verify(ctx, sub); err != nil {
					own = err.Error()
				}
				if own != g {
					t.Errorf("%s: %s: the batch said %q, its own Verify %q", step, sub.RequestID, g, own)
				}
			}
		}
		// A ticket with bob's email: bob's alone.
		s.exec(t, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			91, people[1].Email, nil, "late", people[1].ID)
		bobTicket := `target "shop": subject data remains in support_tickets (1 rows, delete)`
		check("bob's ticket", []string{"", bobTicket, ""})
		// A user row with the shared phone, written another way: both's.
		s.exec(t, `INSERT INTO users (id, email, phone, name, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			92, "someone@example.org", "+49 151 12345678", "late", 0)
		shared := `target "shop": subject data remains in users (1 rows, delete)`
		check("shared phone", []string{shared,
			`target "shop": subject data remains in support_tickets (1 rows, delete), users (1 rows, delete)`, ""})
		s.exec(t, `DELETE FROM support_tickets WHERE id = ?`, 91)
		check("bob's ticket gone", []string{shared, shared, ""})
	})
}

// TestVerifyBatchSharedStepFailsEachAlone: when a step the batch shares
// fails (here the candidate statement of all the subjects' emails, whose
// confirmed rows together pass the limit that each subject's alone stays
// under), every subject is verified alone and gets exactly its own
// Verify's answer: alice's and bob's late tickets fail only them, each
// counting its own, and the Cyrillic alice passes and her kept keys go.
func TestVerifyBatchSharedStepFailsEachAlone(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s, c, _ := countedShop(t, b)
		subs := erasedSubjects(t, c, "req-vb-shared-", people[0], people[1], people[2])
		alice, bob := people[0], people[1]
		s.exec(t, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			81, "ALICE@example.com", nil, "late", alice.ID)
		for i, email := range []string{"bob@example.com", " Bob@Example.com"} {
			s.exec(t, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
				82+i, email, nil, "late", bob.ID)
		}
		c.SetConfirmLimit(2)
		got := c.VerifyBatch(ctx, subs)
		want := []string{
			`target "shop": subject data remains in support_tickets (1 rows, delete)`,
			`target "shop": subject data remains in support_tickets (2 rows, delete)`,
			"",
		}
		for i, sub := range subs {
			var g string
			if got[i] != nil {
				g = got[i].Error()
			}
			if g != want[i] {
				t.Errorf("%s: %q; want %q", sub.RequestID, g, want[i])
			}
			var own string
			if err := c.Verify(ctx, sub); err != nil {
				own = err.Error()
			}
			if own != g {
				t.Errorf("%s: the batch said %q, its own Verify %q", sub.RequestID, g, own)
			}
		}
		if k := s.keptKeys(t, subs[2].RequestID); k != 0 {
			t.Errorf("the Cyrillic alice passed, yet %d of her kept key values are left", k)
		}
		// The emails together do pass the limit: one subject holding
		// both gets the error of the step the batch shared.
		both := connector.Subject{RequestID: "req-vb-shared-both", Identities: []lethe.Identity{
			{Type: lethe.IdentityEmail, Value: alice.Email.(string)}, {Type: lethe.IdentityEmail, Value: bob.Email.(string)}}}
		if err := c.Verify(ctx, both); err == nil || !strings.Contains(err.Error(), "more than 2 rows match") {
			t.Errorf("one subject with both emails: %v; want the limit's error", err)
		}
	})
}
