package sqlconn_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

// TestEraseBatchOneStatementPerTable: eight subjects erased in one batch
// cost the target exactly the statements one subject's Erase costs (one
// statement per table, two where MariaDB selects the keys first or a
// table is pseudonymized, then the ledger's two INSERTs) and one commit.
// Each subject's report is still its own: the eight have the same rows
// as the one, so the same report.
func TestEraseBatchOneStatementPerTable(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		var ps []person
		for i := range 9 {
			ps = append(ps, person{ID: int64(7100001 + i), Name: "p" + strconv.Itoa(i),
				Email: fmt.Sprintf("p%d@example.com", i), Phone: fmt.Sprintf("+49151222000%02d", i)})
		}
		seeded := shopdb.New(t, b, 0, ps...)
		s := &shop{b: b, db: seeded.DB}
		var n counts
		c, err := sqlconn.NewOpenedBy(shopTarget(b.Driver, seeded.DSN, 1000, ""), countingOpen(t, &n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Validate(ctx); err != nil {
			t.Fatal(err)
		}
		subs := resolveAll(t, c, ps, func(p person) lethe.Identity {
			return lethe.Identity{Type: lethe.IdentityEmail, Value: p.Email.(string)}
		})
		// The ledger tables are created before counting: that is the
		// first erasure's cost alone.
		if _, err := c.Changed(ctx, subs[0]); err != nil {
			t.Fatal(err)
		}
		before := n.snap()
		one, err := c.Erase(ctx, subs[0])
		if err != nil {
			t.Fatal(err)
		}
		single := n.snap().minus(before)
		before = n.snap()
		reps, err := c.EraseBatch(ctx, subs[1:])
		if err != nil {
			t.Fatal(err)
		}
		batch := n.snap().minus(before)
		t.Logf("erase of 1: %d statements, %d commits; batch of %d: %d statements, %d commits",
			single.statements, single.commits, len(reps), batch.statements, batch.commits)
		if batch.statements != single.statements || batch.commits != 1 {
			t.Errorf("a batch of %d: %d statements, %d commits; want %d statements (as one subject) and 1 commit",
				len(reps), batch.statements, batch.commits, single.statements)
		}
		for i, rep := range reps {
			if got, want := reportLines(rep), reportLines(one); got != want {
				t.Errorf("subject %d: the batch reports\n  %s\nwant (as the first subject, erased alone)\n  %s", i+1, got, want)
			}
		}
		for _, p := range ps {
			if left := s.remaining(t, p.ID, p.Email); left != 0 {
				t.Errorf("%s: %d rows remain", p.Name, left)
			}
		}
	})
}

// TestEraseBatchSharedRowsAsOneByOne erases eight subjects who share rows
// (a phone written two ways, tickets found by one subject's email and
// another's order, an order carrying one subject's user id and another's
// email), with emails in mixed case and phones in many formats, in one
// batch on one shop and one Erase after the other, in the same order, on
// an identical shop. Each subject's report, and the ledger, must be what
// the one-by-one erasure reports, and both shops must end the same (the
// random pseudonyms aside); with transactions of three rows too, which
// end inside tables.
func TestEraseBatchSharedRowsAsOneByOne(t *testing.T) {
	ps := []person{
		{ID: 7200001, Name: "ann", Email: "Ann.Lee@Example.com", Phone: "+49 151 5550 0001"},
		{ID: 7200002, Name: "ben", Email: "ben@example.com", Phone: "0151 55500001"}, // ann's number
		{ID: 7200003, Name: "cal", Email: "cal@example.com", Phone: "(0151) 555-00003"},
		{ID: 7200004, Name: "dee", Email: "DEE@EXAMPLE.COM", Phone: "+49-151-55500004"},
		{ID: 7200005, Name: "eve", Email: "eve@example.com", Phone: "+4915155500005"},
		{ID: 7200006, Name: "fay", Email: "Fay@Example.com", Phone: "+49 (151) 555 000 06"},
		{ID: 7200007, Name: "gus", Email: "gus@example.com", Phone: "0151/55500007"},
		{ID: 7200008, Name: "hal", Email: "hal@example.com", Phone: "+49 15155500008"},
	}
	// What each subject's request gives: an email in another case, a
	// phone in E.164, a user id.
	given := []lethe.Identity{
		{Type: lethe.IdentityPhone, Value: "+4915155500001"},
		{Type: lethe.IdentityEmail, Value: "BEN@example.com"},
		{Type: lethe.IdentityEmail, Value: "cal@example.com"},
		{Type: lethe.IdentityEmail, Value: "dee@example.com"},
		{Type: lethe.IdentityPhone, Value: "+4915155500005"},
		{Type: lethe.IdentityEmail, Value: "fay@example.com"},
		{Type: lethe.IdentityUserID, Value: "7200007"},
		{Type: lethe.IdentityPhone, Value: "+4915155500008"},
	}
	seed := func(tb testing.TB, b testdb.TargetDB) *shopdb.Shop {
		s := shopdb.New(tb, b, 0, ps...)
		// cal's email (another case) on dee's order, and dee's on cal's.
		s.Exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			900001, "Cal@EXAMPLE.com", 72000041, "shared", 0)
		s.Exec(tb, `INSERT INTO ticket_messages (id, ticket_id, body, seed_owner) VALUES (?, ?, ?, ?)`, 9000011, 900001, "hi", 0)
		s.Exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			900002, " dee@example.COM", 72000031, "shared", 0)
		// eve's user id with fay's email: eve comes first and
		// pseudonymizes it; fay's confirmed keys still name it.
		s.Exec(tb, `INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
			900003, 7200005, "FAY@example.com", "Ship shared", 5, 0)
		s.Exec(tb, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`, 9000031, 900003, "sku-s", 1, 0)
		// hal's email on gus's user id, gus first; and a ticket on that
		// order with ben's email, which ann's phone reaches first.
		s.Exec(tb, `INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
			900004, 7200007, "Hal@example.com", "Ship shared", 6, 0)
		s.Exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			900005, "BEN@EXAMPLE.COM", 900004, "shared", 0)
		// A stranger with a number close to ann's.
		s.Exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
			900006, "ann.lee@example.co", nil, "near miss", 0)
		return s
	}
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		// params: statements of the whole batch would carry too many
		// parameters, so it is erased in parts.
		for _, tc := range []struct{ size, params int }{{1000, 0}, {3, 0}, {1000, 24}} {
			t.Run(fmt.Sprintf("batch_size=%d,params=%d", tc.size, tc.params), func(t *testing.T) {
				ctx := context.Background()
				size := tc.size
				batchShop, oneShop := seed(t, b), seed(t, b)
				var n counts
				batchConn, err := sqlconn.NewOpenedBy(shopTarget(b.Driver, batchShop.DSN, size, "default_region: DE\n"), countingOpen(t, &n))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { batchConn.Close() })
				if err := batchConn.Validate(ctx); err != nil {
					t.Fatal(err)
				}
				if params := tc.params; params > 0 {
					if b.Driver == "postgres" {
						// A list is one array parameter there
						// (query.in): fewer parameters per statement.
						params = 6
					}
					batchConn.SetParams(params)
				}
				oneConn := openValidated(t, "shop", shopMapWith(b.Driver, oneShop.DSN, size, "default_region: DE\n"))
				// Not resolved: each subject's rows are those its one
				// identity reaches, so that the shared rows stay shared
				// (Resolve would follow the shared values to the other
				// subject's own rows).
				var subs []connector.Subject
				for i, p := range ps {
					subs = append(subs, connector.Subject{RequestID: "req-" + p.Name, Identities: given[i : i+1]})
				}
				reps, err := batchConn.EraseBatch(ctx, subs)
				if err != nil {
					t.Fatal(err)
				}
				if commits := n.commits.Load(); tc.params > 0 && commits < 2 {
					t.Errorf("the batch too large for one statement per table committed %d times: it was not erased in parts", commits)
				}
				shared := false
				for i, sub := range subs {
					one, err := oneConn.Erase(ctx, sub)
					if err != nil {
						t.Fatal(err)
					}
					if got, want := reportLines(reps[i]), reportLines(one); got != want {
						t.Errorf("subject %d (%s): the batch reports\n  %s\none Erase after the other reports\n  %s", i, ps[i].Name, got, want)
					}
					changed, err := batchConn.Changed(ctx, sub)
					if err != nil {
						t.Fatal(err)
					}
					if got, want := reportLines(changed), reportLines(reps[i]); got != want {
						t.Errorf("subject %d (%s): the ledger says\n  %s\nthe batch reported\n  %s", i, ps[i].Name, got, want)
					}
					if err := batchConn.Verify(ctx, sub); err != nil {
						t.Errorf("subject %d (%s): %v", i, ps[i].Name, err)
					}
					// fay's own two orders, not eve's order that carries
					// fay's email.
					for _, it := range reps[i].Items {
						if ps[i].Name == "fay" && it.Object == "orders" && it.Rows == 2 {
							shared = true
						}
					}
				}
				if !shared {
					t.Errorf("fay's report does not show the order she shares with eve counted for eve: %s", reportLines(reps[5]))
				}
				if got, want := shopState(t, batchShop), shopState(t, oneShop); got != want {
					t.Errorf("the batch left\n%s\none Erase after the other left\n%s", got, want)
				}
			})
		}
	})
}

// shopMapWith is the shop's map with extra top-level options.
func shopMapWith(driver, dsn string, batch int, extra string) string {
	return fmt.Sprintf(shopMap, driver, strconv.Quote(dsn), batch) + extra
}

func shopTarget(driver, dsn string, batch int, extra string) connector.Target {
	return connector.Target{Name: "shop", Kind: sqlconn.Kind, Decode: func(v any) error {
		return yaml.Unmarshal([]byte(shopMapWith(driver, dsn, batch, extra)), v)
	}}
}

// resolveAll returns a subject per person, given id(p) and what Resolve
// finds, all resolved before anything is erased, as the pipeline does.
func resolveAll(tb testing.TB, c *sqlconn.Connector, ps []person, id func(person) lethe.Identity) []connector.Subject {
	tb.Helper()
	var subs []connector.Subject
	for _, p := range ps {
		sub := connector.Subject{RequestID: "req-" + p.Name, Identities: []lethe.Identity{id(p)}}
		found, err := c.Resolve(context.Background(), sub)
		if err != nil {
			tb.Fatal(err)
		}
		sub.Identities = append(sub.Identities, found...)
		subs = append(subs, sub)
	}
	return subs
}

// shopState dumps every table of the shop, the random tokens left out.
func shopState(tb testing.TB, s *shopdb.Shop) string {
	tb.Helper()
	var out string
	for _, table := range shopdb.Tables {
		q := "SELECT * FROM " + table + " ORDER BY id"
		if table == "orders" {
			q = "SELECT id, user_id, email, shipping_name, note, customer_ref, total, seed_owner FROM orders ORDER BY id"
		}
		lines, _ := dumpRows(tb, s.DB, table, q, "seed_owner")
		for _, l := range lines {
			out += l + "\n"
		}
	}
	return out
}

// TestEraseBatchDeclaredCascadePerSubject: the rows a declared ON DELETE
// CASCADE removes are counted for the subject whose row they hang from,
// as one Erase after the other counts them, with transactions of any
// size; the second subject names the first's user by its email in
// another case, so it shares every row and is reported none.
func TestEraseBatchDeclaredCascadePerSubject(t *testing.T) {
	seed := func(tb testing.TB, b testdb.TargetDB) (*shop, string) {
		s, dsn := newDB(tb, b, slices.Concat(usersDDL, []string{
			`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT,
				FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)`})...)
		for id := int64(1); id <= 3; id++ {
			s.exec(tb, `INSERT INTO users VALUES (?, ?)`, id, fmt.Sprintf("u%d@example.com", id))
			s.exec(tb, `INSERT INTO addresses VALUES (?, ?, ?)`, id*10, id, "Main St")
			for k := range id + 1 {
				s.exec(tb, `INSERT INTO invoices VALUES (?, ?, ?)`, id*10+k, id, 100*id+k)
			}
		}
		return s, dsn
	}
	subs := []connector.Subject{
		{RequestID: "req-c1", Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: "1"}}},
		{RequestID: "req-c2", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "U1@Example.COM"}}},
		{RequestID: "req-c3", Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "u3@example.com"}}},
	}
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		for _, size := range []int{1000, 1} {
			t.Run("batch_size="+strconv.Itoa(size), func(t *testing.T) {
				ctx := context.Background()
				tables := fmt.Sprintf(usersMap, "cascades: [invoices]")
				batchDB, batchDSN := seed(t, b)
				_, oneDSN := seed(t, b)
				batchConn := openMapBatch(t, b, batchDSN, tables, size)
				oneConn := openMapBatch(t, b, oneDSN, tables, size)
				before := batchDB.counts(t, "users", "addresses", "invoices")
				reps, err := batchConn.EraseBatch(ctx, subs)
				if err != nil {
					t.Fatal(err)
				}
				after := batchDB.counts(t, "users", "addresses", "invoices")
				var cascaded int64
				for i, sub := range subs {
					one, err := oneConn.Erase(ctx, sub)
					if err != nil {
						t.Fatal(err)
					}
					if got, want := reportLines(reps[i]), reportLines(one); got != want {
						t.Errorf("subject %d: the batch reports\n  %s\none Erase after the other reports\n  %s", i, got, want)
					}
					changed, err := batchConn.Changed(ctx, sub)
					if err != nil {
						t.Fatal(err)
					}
					if got, want := reportLines(changed), reportLines(reps[i]); got != want {
						t.Errorf("subject %d: the ledger says\n  %s\nthe batch reported\n  %s", i, got, want)
					}
					cascaded += rowsOf(reps[i], "invoices", lethe.ActionDelete)
				}
				if got, want := []int64{rowsOf(reps[0], "invoices", lethe.ActionDelete), rowsOf(reps[1], "invoices", lethe.ActionDelete),
					rowsOf(reps[2], "invoices", lethe.ActionDelete)}, []int64{2, 0, 4}; !slices.Equal(got, want) {
					t.Errorf("cascaded invoices per subject: %v, want %v", got, want)
				}
				if lost := before["invoices"] - after["invoices"]; cascaded != lost {
					t.Errorf("the reports count %d cascaded invoices; the table lost %d", cascaded, lost)
				}
			})
		}
	})
}
