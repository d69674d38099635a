package sqlconn_test

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// counts reads the row count of every table named.
func (s *shop) counts(tb testing.TB, tables ...string) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, t := range tables {
		out[t] = s.count(tb, t)
	}
	return out
}

// assertMeasured checks that every delete line of rep equals the rows its
// table lost between before and after, and that every table that lost
// rows has a line.
func assertMeasured(tb testing.TB, rep lethe.Report, before, after map[string]int64) {
	tb.Helper()
	seen := map[string]bool{}
	for _, it := range rep.Items {
		if it.Action != lethe.ActionDelete {
			continue
		}
		seen[it.Object] = true
		if want := before[it.Object] - after[it.Object]; it.Rows != want || it.LowerBound {
			tb.Errorf("%s delete rows = %d (lower bound %v), want %d: the rows the table actually lost", it.Object, it.Rows, it.LowerBound, want)
		}
	}
	for t, n := range before {
		if n != after[t] && !seen[t] {
			tb.Errorf("%s lost %d rows but the report has no delete line for it: %+v", t, n-after[t], rep.Items)
		}
	}
}

func rowsOf(rep lethe.Report, object string, action lethe.Action) int64 {
	for _, it := range rep.Items {
		if it.Object == object && it.Action == action {
			return it.Rows
		}
	}
	return -1
}

// A user delete refused by a RESTRICT key on every attempt (the schema
// check bypassed): the ledger says what actually changed, addresses 1 and
// users 0, never the plan's users 1.
func TestLedgerFailedDeleteReportsWhatChanged(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, c := restrictedInvoices(t, b)
		ctx := context.Background()
		subj := subjectOne
		subj.RequestID = "req-fk-" + b.Driver
		tables := []string{"users", "addresses", "invoices"}
		before := s.counts(t, tables...)
		plan, err := c.Plan(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if rowsOf(plan, "users", lethe.ActionDelete) != 1 {
			t.Fatalf("plan = %+v, want users delete 1", plan.Items)
		}
		for attempt := 1; attempt <= 3; attempt++ {
			if _, err := c.Erase(ctx, subj); err == nil {
				t.Fatalf("attempt %d: Erase succeeded although a RESTRICT key references the user", attempt)
			}
		}
		rep, err := c.Changed(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		after := s.counts(t, tables...)
		assertMeasured(t, rep, before, after)
		if got := rowsOf(rep, "users", lethe.ActionDelete); got != 0 {
			t.Errorf("users delete rows = %d, want 0: the delete failed on every attempt", got)
		}
		if got := rowsOf(rep, "addresses", lethe.ActionDelete); got != 1 {
			t.Errorf("addresses delete rows = %d, want 1", got)
		}
		if got := rowsOf(rep, "invoices", lethe.ActionRetain); got != 2 {
			t.Errorf("invoices retain rows = %d, want 2", got)
		}
	})
}

// A declared ON DELETE CASCADE is its own line, with the rows the database
// deleted through it.
func TestLedgerCountsDeclaredCascade(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b, slices.Concat(usersDDL, []string{
			`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT,
				FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)`})...)
		seedUsers(t, s)
		c := openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]"))
		ctx := context.Background()
		subj := subjectOne
		subj.RequestID = "req-cascade-" + b.Driver
		tables := []string{"users", "addresses", "invoices"}
		before := s.counts(t, tables...)
		if _, err := c.Erase(ctx, subj); err != nil {
			t.Fatal(err)
		}
		rep, err := c.Changed(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		assertMeasured(t, rep, before, s.counts(t, tables...))
		if got := rowsOf(rep, "invoices", lethe.ActionDelete); got != 2 {
			t.Errorf("invoices (cascade) delete rows = %d, want 2: %+v", got, rep.Items)
		}
	})
}

// lethe dies after the target committed batches and before it recorded
// the attempt's report (dropped here, as a crash drops it): the next
// attempt finds less and reports only the rest, and the ledger still has
// every batch.
func TestLedgerExactAcrossCrash(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b, slices.Concat(usersDDL, []string{
			`CREATE TABLE blocker (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, FOREIGN KEY (user_id) REFERENCES users (id))`})...)
		s.exec(t, `INSERT INTO users VALUES (?, ?)`, 1, "u1@example.com")
		s.exec(t, `INSERT INTO users VALUES (?, ?)`, 2, "u2@example.com")
		for i := range 25 {
			s.exec(t, `INSERT INTO addresses VALUES (?, ?, ?)`, 100+i, 1+i%5/4, "Main St")
		}
		s.exec(t, `INSERT INTO blocker VALUES (?, ?)`, 1, 1)
		c := openMapBatch(t, b, dsn, fmt.Sprintf(usersMap, ""), 3)
		ctx := context.Background()
		subj := subjectOne
		subj.RequestID = "req-crash-" + b.Driver
		tables := []string{"users", "addresses"}
		before := s.counts(t, tables...)

		// The first attempt commits the address batches, then stops at
		// users; its report is lost with the process.
		if _, err := c.Erase(ctx, subj); err == nil {
			t.Fatal("the first attempt was meant to stop at users")
		}
		s.exec(t, `DELETE FROM blocker`)
		second, err := c.Erase(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		after := s.counts(t, tables...)
		if got := rowsOf(second, "addresses", lethe.ActionDelete); got != 0 {
			t.Fatalf("the restart reported %d addresses, want 0: the first attempt erased them all", got)
		}
		rep, err := c.Changed(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		assertMeasured(t, rep, before, after)
		if got := rowsOf(rep, "addresses", lethe.ActionDelete); got != 20 {
			t.Errorf("addresses delete rows = %d, want 20", got)
		}
	})
}

// cutAfter cancels an Erase once the ledger shows the given number of
// committed batches, as a crash between batches would stop it.
type cutAfter struct {
	c       *sqlconn.Connector
	batches int
	cancel  context.CancelFunc
}

func (k *cutAfter) erase(ctx context.Context, tb testing.TB, subj connector.Subject) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = k.c.Erase(ctx, subj) // the report is lost with the process
	}()
	for {
		select {
		case <-done:
			k.cancel()
			return
		default:
		}
		rep, err := k.c.Changed(context.Background(), subj)
		if err == nil && rep.Total() >= int64(k.batches) {
			k.cancel()
			<-done
			return
		}
	}
}

// A notes row with the subject's user id, and an order item of an erased
// order, written after the erase (a trigger, a late writer): verify finds
// both by the erased keys, although their parents are gone.
func TestVerifyFindsLateChildren(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b,
			`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255))`,
			`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL)`,
			`CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(20))`,
			`CREATE TABLE notes (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, body VARCHAR(255))`)
		for u := int64(1); u <= 2; u++ {
			s.exec(t, `INSERT INTO users VALUES (?, ?)`, u, fmt.Sprintf("u%d@example.com", u))
			s.exec(t, `INSERT INTO orders VALUES (?, ?)`, u*10, u)
			s.exec(t, `INSERT INTO order_items VALUES (?, ?, ?)`, u*100, u*10, "sku")
			s.exec(t, `INSERT INTO notes VALUES (?, ?, ?)`, u*1000, u, "hello")
		}
		c := openMap(t, b, dsn, `
  - name: users
    identities: {email: email}
    action: delete
  - name: orders
    references: {column: user_id, table: users}
    action: delete
  - name: order_items
    references: {column: order_id, table: orders}
    action: delete
  - name: notes
    references: {column: user_id, table: users}
    action: delete
`)
		ctx := context.Background()
		subj := connector.Subject{RequestID: "req-late-" + b.Driver, Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "u1@example.com"}}}
		if _, err := c.Erase(ctx, subj); err != nil {
			t.Fatal(err)
		}
		// The late writers.
		s.exec(t, `INSERT INTO notes VALUES (?, ?, ?)`, 1001, 1, "late")
		s.exec(t, `INSERT INTO order_items VALUES (?, ?, ?)`, 101, 10, "late")
		err := c.Verify(ctx, subj)
		if err == nil {
			t.Fatal("Verify passed with a late notes row and a late order item of the erased subject")
		}
		for _, want := range []string{"notes (1 rows", "order_items (1 rows"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Verify error %q does not name %q", err, want)
			}
		}
		// The next attempt erases them, and verify then passes; the other
		// user's rows stay.
		if _, err := c.Erase(ctx, subj); err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(ctx, subj); err != nil {
			t.Fatalf("Verify after the second erase: %v", err)
		}
		for table, want := range map[string]int64{"users": 1, "orders": 1, "order_items": 1, "notes": 1} {
			if n := s.count(t, table); n != want {
				t.Errorf("%s = %d rows, want %d (the other user's)", table, n, want)
			}
		}
	})
}

// TestLedgerProperty: for random data maps and data sets, after any mix
// of success, failure (a RESTRICT key from an unmapped table, injected and
// later lifted) and crash (an attempt cut off, its report lost), every
// line the ledger reports equals the before/after difference of the real
// tables.
func TestLedgerProperty(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		for seed := int64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				ledgerProperty(t, b, seed)
			})
		}
	})
}

func ledgerProperty(t *testing.T, b testdb.TargetDB, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	// A tree of tables under users: each child references a random
	// earlier table.
	n := 2 + rng.Intn(4)
	names := []string{"users"}
	parent := map[string]string{}
	ddl := []string{`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255))`}
	m := "\n  - name: users\n    identities: {email: email}\n    action: delete\n"
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("t%d", i)
		p := names[rng.Intn(len(names))]
		parent[name] = p
		names = append(names, name)
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE %s (id BIGINT PRIMARY KEY, ref BIGINT NOT NULL, FOREIGN KEY (ref) REFERENCES %s (id))`, name, p))
		m += fmt.Sprintf("  - name: %s\n    references: {column: ref, table: %s}\n    action: delete\n", name, p)
	}
	// The blocker: an unmapped table whose RESTRICT key refuses the
	// delete of one mapped row until it is lifted.
	victim := names[rng.Intn(len(names))]
	ddl = append(ddl, fmt.Sprintf(`CREATE TABLE blocker (id BIGINT PRIMARY KEY, ref BIGINT NOT NULL, FOREIGN KEY (ref) REFERENCES %s (id))`, victim))
	s, dsn := newDB(t, b, ddl...)
	ids := map[string][]int64{}
	next := int64(1)
	for u := 1; u <= 3; u++ {
		s.exec(t, `INSERT INTO users VALUES (?, ?)`, next, fmt.Sprintf("u%d@example.com", u))
		ids["users"] = append(ids["users"], next)
		next++
	}
	for _, name := range names[1:] {
		for range rng.Intn(12) {
			pids := ids[parent[name]]
			if len(pids) == 0 {
				break
			}
			s.exec(t, fmt.Sprintf(`INSERT INTO %s VALUES (?, ?)`, name), next, pids[rng.Intn(len(pids))])
			ids[name] = append(ids[name], next)
			next++
		}
	}
	blocked := false
	if len(ids[victim]) > 0 && rng.Intn(2) == 0 {
		s.exec(t, `INSERT INTO blocker VALUES (?, ?)`, 1, ids[victim][rng.Intn(len(ids[victim]))])
		blocked = true
	}
	c := openMapBatch(t, b, dsn, m, 1+rng.Intn(4))
	ctx := context.Background()
	subj := connector.Subject{RequestID: fmt.Sprintf("req-prop-%s-%d", b.Driver, seed),
		Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "u1@example.com"}}}
	before := s.counts(t, names...)
	for attempt := 0; attempt < 4; attempt++ {
		switch rng.Intn(3) {
		case 0: // a crash after some batches
			cut, cancel := context.WithCancel(ctx)
			(&cutAfter{c: c, batches: 1 + rng.Intn(3), cancel: cancel}).erase(cut, t, subj)
		default:
			_, _ = c.Erase(ctx, subj) // may fail on the blocker
		}
		if blocked && rng.Intn(2) == 0 {
			s.exec(t, `DELETE FROM blocker`)
			blocked = false
		}
		rep, err := c.Changed(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		assertMeasured(t, rep, before, s.counts(t, names...))
	}
}

// The connector says its reports are full (connector.FullReporter), so the
// pipeline neither plans before a first attempt nor reads the ledger
// after a first call that succeeded: such a call's report must be exactly
// what Changed reads back, every line (declared cascades, retained
// counts, reasons) and in its order, and list every object Plan lists.
// Checked on the shop (delete, pseudonymize, retain, over several
// transactions), on a declared cascade, and per subject of a batch.
func TestFirstEraseReportIsTheLedger(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		same := func(t *testing.T, c *sqlconn.Connector, subj connector.Subject, got lethe.Report) {
			t.Helper()
			want, err := c.Changed(ctx, subj)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: Erase's report differs from Changed (-changed +erase):\n%s", subj.RequestID, diff)
			}
		}
		objects := func(r lethe.Report) []string {
			var out []string
			for _, it := range r.Items {
				out = append(out, it.Object+" "+string(it.Action))
			}
			return out
		}
		t.Run("shop", func(t *testing.T) {
			s, dsn := newShop(t, b)
			c := s.connector(t, dsn, 2) // transactions of two rows
			if !connector.FullReports(c) {
				t.Fatal("FullReports is false")
			}
			var subs []connector.Subject
			for i, p := range []person{people[0], people[1], people[2]} {
				sub := connector.Subject{RequestID: fmt.Sprintf("req-full-%s-%d", b.Driver, i),
					Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: p.Email.(string)}}}
				found, err := c.Resolve(ctx, sub)
				if err != nil {
					t.Fatal(err)
				}
				sub.Identities = append(sub.Identities, found...)
				subs = append(subs, sub)
			}
			plan, err := c.Plan(ctx, subs[0])
			if err != nil {
				t.Fatal(err)
			}
			rep, err := c.Erase(ctx, subs[0])
			if err != nil {
				t.Fatal(err)
			}
			if rep.Total() == 0 || rowsOf(rep, "invoices", lethe.ActionRetain) <= 0 {
				t.Fatalf("alice's erasure changed or kept nothing: %+v", rep.Items)
			}
			if diff := cmp.Diff(objects(plan), objects(rep)); diff != "" {
				t.Errorf("Erase's report lists other objects than Plan (-plan +erase):\n%s", diff)
			}
			same(t, c, subs[0], rep)
			reps, err := c.EraseBatch(ctx, subs[1:])
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range reps {
				if r.Total() == 0 {
					t.Errorf("%s: the batch changed nothing for it", subs[1+i].RequestID)
				}
				same(t, c, subs[1+i], r)
			}
		})
		t.Run("cascade", func(t *testing.T) {
			s, dsn := newDB(t, b, slices.Concat(usersDDL, []string{
				`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT,
					FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)`})...)
			seedUsers(t, s)
			c := openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]"))
			subj := subjectOne
			subj.RequestID = "req-full-cascade-" + b.Driver
			plan, err := c.Plan(ctx, subj)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := c.Erase(ctx, subj)
			if err != nil {
				t.Fatal(err)
			}
			if got := rowsOf(rep, "invoices", lethe.ActionDelete); got != 2 {
				t.Errorf("invoices (cascade) delete rows = %d, want 2: %+v", got, rep.Items)
			}
			if diff := cmp.Diff(objects(plan), objects(rep)); diff != "" {
				t.Errorf("Erase's report lists other objects than Plan (-plan +erase):\n%s", diff)
			}
			same(t, c, subj, rep)
		})
	})
}
