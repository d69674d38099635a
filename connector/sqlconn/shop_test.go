package sqlconn_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/connectortest"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

const shopMap = `
driver: %s
dsn: %s
batch_size: %d
hash_key: 0123456789abcdef-test-key
tables:
  - name: users
    identities: {email: email, phone: phone, user_id: id}
    action: delete
  - name: addresses
    references: {column: user_id, table: users, to: id}
    action: delete
  - name: orders
    identities: {email: email}
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {user_id: null, email: redact_email, shipping_name: null, note: {fixed: "erased"}, customer_ref: hash, token: random}
  - name: order_items
    references: {column: order_id, table: orders}
    action: delete
  - name: support_tickets
    identities: {email: email}
    references:
      - {column: order_id, table: orders}
    action: delete
  - name: ticket_messages
    references: {column: ticket_id, table: support_tickets}
    action: delete
  - name: invoices
    references: {column: user_id, table: users}
    action: retain
    reason: "tax law: invoices kept 10 years"
    until: 2036-01-01
`

// person is one seeded user with a full set of rows (shopdb.Shop.Add);
// name names the subtests.
type person = shopdb.Person

const (
	cyrillicAlice = "\u0430lice@example.com" // Cyrillic а
	injQuote      = "x' OR '1'='1"
	injDrop       = `"; DROP TABLE users; --`
)

var people = []person{
	{ID: 7000001, Name: "alice", Email: "alice@example.com", Phone: "+4915112345678"},
	{ID: 7000002, Name: "bob", Email: "bob@example.com", Phone: "+4915187654321"},
	{ID: 7000003, Name: "cyrillic", Email: cyrillicAlice, Phone: "+4915100000003"},
	{ID: 7000004, Name: "quote", Email: injQuote, Phone: "+4915100000004"},
	{ID: 7000005, Name: "drop", Email: injDrop, Phone: "+4915100000005"},
	{ID: 7000006, Name: "long", Email: strings.Repeat("alice", 40) + "@example.com", Phone: "+4915100000006"},
}

// shop is one database a test writes to.
type shop struct {
	b  testdb.TargetDB
	db *sql.DB
}

func (s *shop) exec(tb testing.TB, stmt string, args ...any) {
	tb.Helper()
	stmt = s.b.Rebind(stmt)
	if _, err := s.db.Exec(stmt, args...); err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	}
}

// newShop seeds the shared shop with only the named people in it.
func newShop(tb testing.TB, b testdb.TargetDB) (*shop, string) {
	tb.Helper()
	seeded := shopdb.New(tb, b, 0, people...)
	s := &shop{b: b, db: seeded.DB}
	// A stranger's ticket whose email differs from alice's by one letter.
	s.exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`,
		1, "alice@example.co", nil, "near miss", 0)
	return s, seeded.DSN
}

func (s *shop) connector(tb testing.TB, dsn string, batch int) *sqlconn.Connector {
	tb.Helper()
	return openValidated(tb, "shop", fmt.Sprintf(shopMap, s.b.Driver, strconv.Quote(dsn), batch))
}

// openValidated builds the connector of target name from its YAML map and
// validates it against the live schema.
func openValidated(tb testing.TB, name, doc string) *sqlconn.Connector {
	tb.Helper()
	c, err := sqlconn.New(context.Background(), connector.Target{
		Name: name, Kind: sqlconn.Kind,
		Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) },
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Validate(context.Background()); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return c
}

// snapshot dumps every table, splitting owner's rows from the rest.
func (s *shop) snapshot(tb testing.TB, owner int64) (string, string) {
	tb.Helper()
	var mine, others strings.Builder
	for _, t := range shopdb.Tables {
		lines, owners := dumpRows(tb, s.db, t, "SELECT * FROM "+t+" ORDER BY id", "seed_owner")
		for i, l := range lines {
			w := &others
			if owners[i] == strconv.FormatInt(owner, 10) {
				w = &mine
			}
			w.WriteString(l + "\n")
		}
	}
	return mine.String(), others.String()
}

// dumpRows renders each row of query as "table col=value ...", and returns
// the value of ownerCol of each.
func dumpRows(tb testing.TB, db *sql.DB, table, query, ownerCol string) (lines, owners []string) {
	tb.Helper()
	rows, err := db.Query(query)
	if err != nil {
		tb.Fatal(err)
	}
	cols, all := testdb.ScanRows(tb, rows)
	for _, vals := range all {
		var line strings.Builder
		line.WriteString(table)
		rowOwner := ""
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			if cols[i] == ownerCol {
				rowOwner = fmt.Sprint(v)
			}
			fmt.Fprintf(&line, " %s=%v", cols[i], v)
		}
		lines = append(lines, line.String())
		owners = append(owners, rowOwner)
	}
	return lines, owners
}

// remaining counts owner's rows that still identify them: rows of delete
// tables, and orders still linked or still carrying the email.
func (s *shop) remaining(tb testing.TB, owner int64, email any) int64 {
	tb.Helper()
	var total int64
	for _, t := range []string{"users", "addresses", "order_items", "support_tickets", "ticket_messages"} {
		var n int64
		q := s.b.Rebind("SELECT COUNT(*) FROM " + t + " WHERE seed_owner = ?")
		if err := s.db.QueryRow(q, owner).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		total += n
	}
	var n int64
	q := s.b.Rebind("SELECT COUNT(*) FROM orders WHERE seed_owner = ? AND (user_id IS NOT NULL OR email = ? OR shipping_name IS NOT NULL)")
	if err := s.db.QueryRow(q, owner, email).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return total + n
}

func harness(b testdb.TargetDB, p person, given []lethe.Identity) connectortest.Harness {
	return connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
		s, dsn := newShop(tb, b)
		return connectortest.Fixture{
			// A batch of 2 makes every table take several batches.
			Connector: s.connector(tb, dsn, 2),
			Subject:   connector.Subject{RequestID: "req-1", Identities: given},
			Snapshot:  func(tb testing.TB) (string, string) { return s.snapshot(tb, p.ID) },
			Remaining: func(tb testing.TB) int64 { return s.remaining(tb, p.ID, p.Email) },
		}
	}}
}

func TestConformance(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		alice := people[0]
		connectortest.Exercise(t, harness(b, alice, []lethe.Identity{{Type: lethe.IdentityEmail, Value: alice.Email.(string)}}))
	})
}

// Subjects whose identities are hostile strings: each must find exactly
// their own rows, and hostile user ids must match nothing.
func TestConformanceHostileIdentities(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		for _, p := range people[2:] {
			t.Run(p.Name, func(t *testing.T) {
				connectortest.Exercise(t, harness(b, p, []lethe.Identity{
					{Type: lethe.IdentityEmail, Value: p.Email.(string)},
					{Type: lethe.IdentityUserID, Value: injQuote},
					{Type: lethe.IdentityUserID, Value: "7000001 OR 1=1"},
					{Type: lethe.IdentityUserID, Value: "7000002abc"}, // MySQL would cast this to 7000002
					{Type: lethe.IdentityPhone, Value: strings.Repeat("9", 5000)},
				}))
			})
		}
	})
}

func TestPlanAndErase(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s, dsn := newShop(t, b)
		c := s.connector(t, dsn, 1)
		alice := people[0]
		given := []lethe.Identity{{Type: lethe.IdentityEmail, Value: alice.Email.(string)}}
		found, err := c.Resolve(ctx, connector.Subject{Identities: given})
		if err != nil {
			t.Fatal(err)
		}
		wantFound := []lethe.Identity{
			{Type: lethe.IdentityPhone, Value: alice.Phone.(string)},
			{Type: lethe.IdentityUserID, Value: "7000001"},
		}
		if diff := cmp.Diff(wantFound, found); diff != "" {
			t.Errorf("Resolve (-want +got):\n%s", diff)
		}
		subj := connector.Subject{Identities: append(given, found...)}
		until, _ := parseDate("2036-01-01")
		want := lethe.Report{Items: []lethe.ReportItem{
			{Object: "users", Action: lethe.ActionDelete, Rows: 1},
			{Object: "addresses", Action: lethe.ActionDelete, Rows: 2},
			{Object: "orders", Action: lethe.ActionPseudonymize, Rows: 2},
			{Object: "order_items", Action: lethe.ActionDelete, Rows: 3},
			{Object: "support_tickets", Action: lethe.ActionDelete, Rows: 2},
			{Object: "ticket_messages", Action: lethe.ActionDelete, Rows: 3},
			{Object: "invoices", Action: lethe.ActionRetain, Rows: 2, Reason: "tax law: invoices kept 10 years", Until: until},
		}}
		sortItems := cmpopts.SortSlices(func(a, b lethe.ReportItem) bool { return a.Object < b.Object })
		plan, err := c.Plan(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, plan, sortItems); diff != "" {
			t.Errorf("Plan (-want +got):\n%s", diff)
		}

		// A crash part-way: some of alice's rows are already gone. The
		// next run erases the rest and counts only what it changed.
		s.exec(t, "DELETE FROM ticket_messages WHERE id = ?", int64(700000101))
		rep, err := c.Erase(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		want.Items[5].Rows = 2
		if diff := cmp.Diff(want, rep, sortItems); diff != "" {
			t.Errorf("Erase (-want +got):\n%s", diff)
		}
		if err := c.Verify(ctx, subj); err != nil {
			t.Errorf("Verify: %v", err)
		}

		// Pseudonymized orders: unlinked, deterministic hashes, kept totals.
		rows, err := s.db.Query(b.Rebind("SELECT user_id, email, shipping_name, note, customer_ref, token, total FROM orders WHERE seed_owner = ? ORDER BY id"), alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var tokens []string
		for rows.Next() {
			var uid sql.NullInt64
			var email, name, note, ref, token sql.NullString
			var total int64
			if err := rows.Scan(&uid, &email, &name, &note, &ref, &token, &total); err != nil {
				t.Fatal(err)
			}
			if uid.Valid || name.Valid || note.String != "erased" || total == 0 {
				t.Errorf("order not pseudonymized as configured: user_id %v name %v note %q total %d", uid, name, note.String, total)
			}
			if !strings.HasPrefix(email.String, "erased+") || !strings.HasSuffix(email.String, "@invalid") || len(email.String) != len("erased+0123456789abcdef@invalid") {
				t.Errorf("email = %q, want erased+<16 hex>@invalid", email.String)
			}
			if len(ref.String) != 64 || strings.Contains(ref.String, "alice") {
				t.Errorf("customer_ref = %q, want a 64-hex HMAC", ref.String)
			}
			if len(token.String) != 32 || token.String == "tok-alice" {
				t.Errorf("token = %q, want 32 random hex", token.String)
			}
			tokens = append(tokens, token.String)
		}
		if len(tokens) != 2 || tokens[0] == tokens[1] {
			t.Errorf("random tokens %v: want two different values", tokens)
		}
	})
}

func parseDate(s string) (time.Time, error) { return time.Parse(time.DateOnly, s) }
