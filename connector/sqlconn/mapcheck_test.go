package sqlconn_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// newDB opens an empty database of backend b and runs ddl in it.
func newDB(tb testing.TB, b testdb.TargetDB, ddl ...string) (*shop, string) {
	tb.Helper()
	dsn, db := b.Open(tb)
	s := &shop{b: b, db: db}
	for _, stmt := range ddl {
		s.exec(tb, stmt)
	}
	return s, dsn
}

// openMap builds a connector from the tables part of a data map.
func openMap(tb testing.TB, b testdb.TargetDB, dsn, tables string) *sqlconn.Connector {
	tb.Helper()
	return openMapBatch(tb, b, dsn, tables, 0)
}

// openMapBatch is openMap with a batch size (0: the default).
func openMapBatch(tb testing.TB, b testdb.TargetDB, dsn, tables string, batch int) *sqlconn.Connector {
	tb.Helper()
	o := sqlconn.Options{Driver: b.Driver, DSN: dsn, HashKey: "0123456789abcdef-test-key", BatchSize: batch}
	if err := yaml.Unmarshal([]byte(tables), &o.Tables); err != nil {
		tb.Fatalf("tables: %v", err)
	}
	c, err := sqlconn.Open("app", o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Validate(context.Background()); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return c
}

func check(tb testing.TB, c *sqlconn.Connector) []connector.Problem {
	tb.Helper()
	ps, err := c.CheckSchema(context.Background())
	if err != nil {
		tb.Fatalf("CheckSchema: %v", err)
	}
	return ps
}

// find returns the problems of severity sev about table (and column, when
// given).
func find(ps []connector.Problem, sev connector.Severity, table, column string) []connector.Problem {
	var out []connector.Problem
	for _, p := range ps {
		if p.Severity == sev && p.Table == table && (column == "" || p.Column == column) {
			out = append(out, p)
		}
	}
	return out
}

func (s *shop) count(tb testing.TB, table string) int64 {
	tb.Helper()
	var n int64
	if err := s.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// usersDDL is a users table with addresses, the parent every test below
// hangs its invoices on.
var usersDDL = []string{
	`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255))`,
	`CREATE TABLE addresses (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, street VARCHAR(255),
		FOREIGN KEY (user_id) REFERENCES users (id))`,
}

const usersMap = `
  - name: users
    identities: {email: email, user_id: id}
    action: delete
    %s
  - name: addresses
    references: {column: user_id, table: users}
    action: delete
`

func seedUsers(tb testing.TB, s *shop) {
	tb.Helper()
	for id := int64(1); id <= 2; id++ {
		s.exec(tb, `INSERT INTO users VALUES (?, ?)`, id, fmt.Sprintf("u%d@example.com", id))
		s.exec(tb, `INSERT INTO addresses VALUES (?, ?, ?)`, id*10, id, "Main St")
		s.exec(tb, `INSERT INTO invoices VALUES (?, ?, ?)`, id*10, id, 100*id)
		s.exec(tb, `INSERT INTO invoices VALUES (?, ?, ?)`, id*10+1, id, 100*id+1)
	}
}

var subjectOne = connector.Subject{Identities: []lethe.Identity{
	{Type: lethe.IdentityEmail, Value: "u1@example.com"}, {Type: lethe.IdentityUserID, Value: "1"},
}}

// restrictedInvoices seeds users with retained invoices whose foreign key
// to users is RESTRICT, and opens the map that keeps them.
func restrictedInvoices(tb testing.TB, b testdb.TargetDB) (*shop, *sqlconn.Connector) {
	tb.Helper()
	s, dsn := newDB(tb, b, slices.Concat(usersDDL, []string{
		`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT,
			FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE RESTRICT)`})...)
	seedUsers(tb, s)
	return s, openMap(tb, b, dsn, fmt.Sprintf(usersMap, "")+`
  - name: invoices
    references: {column: user_id, table: users}
    action: retain
    reason: tax law
`)
}

// A retained invoices table whose foreign key to users is RESTRICT: the
// erase could never finish, so the check refuses the map (and changes
// nothing). Without the check, Erase fails midway with addresses already
// gone: the half-erased person the check exists to prevent.
func TestCheckRetainedTableBlocksDelete(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, c := restrictedInvoices(t, b)
		ps := check(t, c)
		errs := find(ps, connector.SeverityError, "invoices", "user_id")
		if len(errs) != 1 || !strings.Contains(errs[0].Message, "could never finish") || errs[0].Target != "app" {
			t.Fatalf("want one error on invoices.user_id saying the erase could never finish; got %v", ps)
		}
		if n := len(connector.Errors(ps)); n != 1 {
			t.Errorf("errors = %d, want 1: %v", n, ps)
		}
		for table, want := range map[string]int64{"users": 2, "addresses": 2, "invoices": 4} {
			if n := s.count(t, table); n != want {
				t.Errorf("%s rows = %d after the check, want %d", table, n, want)
			}
		}

		// What the check prevents.
		rep, err := c.Erase(context.Background(), subjectOne)
		if err == nil {
			t.Fatal("Erase succeeded although a RESTRICT key references the user")
		}
		if n := s.count(t, "addresses"); n != 1 {
			t.Errorf("addresses = %d after the failed erase, want 1 (erased before the failure)", n)
		}
		if n := s.count(t, "users"); n != 2 {
			t.Errorf("users = %d after the failed erase, want 2", n)
		}
		t.Logf("without the check: %v (report %v)", err, rep.Items)
	})
}

// ON DELETE CASCADE into an unmapped invoices table: undeclared it is an
// error (rows would vanish unreported); declared, the check passes and
// Plan counts the rows the cascade deletes, which Erase then removes.
func TestCheckCascade(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ddl := slices.Concat(usersDDL, []string{
			`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT,
				FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)`})
		s, dsn := newDB(t, b, ddl...)
		seedUsers(t, s)

		undeclared := check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "")))
		errs := find(undeclared, connector.SeverityError, "invoices", "user_id")
		if len(errs) != 1 || !strings.Contains(errs[0].Message, "ON DELETE CASCADE") || !strings.Contains(errs[0].Message, "cascades: [invoices]") {
			t.Fatalf("undeclared cascade: want one error on invoices.user_id suggesting cascades: [invoices]; got %v", undeclared)
		}
		if !strings.Contains(errs[0].Suggestion, "references: {column: user_id, table: users, to: id}") {
			t.Errorf("suggestion = %q, want a reference to users", errs[0].Suggestion)
		}

		c := openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]"))
		declared := check(t, c)
		if errs := connector.Errors(declared); len(errs) != 0 {
			t.Fatalf("declared cascade: errors %v", errs)
		}
		if w := find(declared, connector.SeverityWarning, "invoices", ""); len(w) != 0 {
			t.Errorf("declared cascade still warned about: %v", w)
		}
		plan, err := c.Plan(context.Background(), subjectOne)
		if err != nil {
			t.Fatal(err)
		}
		var got *lethe.ReportItem
		for i, it := range plan.Items {
			if it.Object == "invoices" {
				got = &plan.Items[i]
			}
		}
		if got == nil || got.Rows != 2 || got.Action != lethe.ActionDelete || !strings.Contains(got.Reason, "CASCADE from users") {
			t.Fatalf("plan lacks invoices delete 2 (cascade): %+v", plan.Items)
		}
		if _, err := c.Erase(context.Background(), subjectOne); err != nil {
			t.Fatal(err)
		}
		if n := s.count(t, "invoices"); n != 2 {
			t.Errorf("invoices = %d after erase, want 2 (the other user's)", n)
		}
	})
}

// A declared ON DELETE SET NULL into a retained table passes; a cascade
// into a retained table is an error even when declared.
func TestCheckSetNullAndRetainedCascade(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b, slices.Concat(usersDDL, []string{
			`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT, amount BIGINT,
				FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL)`,
			`CREATE TABLE receipts (id BIGINT PRIMARY KEY, user_id BIGINT, amount BIGINT,
				FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)`})...)
		_ = s
		retained := `
  - name: invoices
    references: {column: user_id, table: users}
    action: retain
    reason: tax law
  - name: receipts
    references: {column: user_id, table: users}
    action: retain
    reason: tax law
`
		ps := check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices, receipts]")+retained))
		if e := find(ps, connector.SeverityError, "invoices", ""); len(e) != 0 {
			t.Errorf("declared SET NULL into a retained table refused: %v", e)
		}
		if e := find(ps, connector.SeverityError, "receipts", "user_id"); len(e) != 1 || !strings.Contains(e[0].Message, "retained") {
			t.Errorf("CASCADE into a retained table: want one error, got %v", ps)
		}
		ps = check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "")+retained))
		if e := find(ps, connector.SeverityError, "invoices", "user_id"); len(e) != 1 || !strings.Contains(e[0].Message, "SET NULL") {
			t.Errorf("undeclared SET NULL: want one error on invoices, got %v", ps)
		}
	})
}

// pseudonymize setting a NOT NULL column to null would fail mid-erase;
// so would a foreign key column pseudonymized to a value no parent holds.
func TestCheckNotNullToNull(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b, slices.Concat(usersDDL, []string{
			`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, shipping_name VARCHAR(255) NOT NULL, note VARCHAR(255),
				ref VARCHAR(64), code VARCHAR(16), total BIGINT NOT NULL, FOREIGN KEY (user_id) REFERENCES users (id))`,
			`CREATE UNIQUE INDEX orders_ref ON orders (ref)`,
			`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT, FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL)`})...)
		ps := check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]")+`
  - name: orders
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {user_id: null, shipping_name: null, note: null}
`))
		errs := connector.Errors(ps)
		if len(errs) != 1 || errs[0].Table != "orders" || errs[0].Column != "shipping_name" || !strings.Contains(errs[0].Message, "NOT NULL") {
			t.Fatalf("want exactly one error on orders.shipping_name (NOT NULL), got %v", ps)
		}

		// A fixed value in the foreign key column must be a key of the
		// parent: user 999 does not exist, user 0 (an "erased" account) does.
		s.exec(t, `INSERT INTO users VALUES (?, ?)`, 0, "nobody@invalid")
		for fixed, want := range map[string]int{"999": 1, "0": 0} {
			ps := check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]")+`
  - name: orders
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {user_id: {fixed: "`+fixed+`"}, shipping_name: {fixed: "erased"}}
`))
			if got := find(ps, connector.SeverityError, "orders", "user_id"); len(got) != want || len(connector.Errors(ps)) != want {
				t.Errorf("user_id fixed to %s: %d errors on orders.user_id, want %d: %v", fixed, len(got), want, ps)
			}
		}

		// A 64-character hash does not fit VARCHAR(16); SQLite does not
		// enforce lengths.
		ps = check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]")+`
  - name: orders
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {user_id: null, shipping_name: {fixed: "erased"}, ref: hash, note: random, code: hash}
`))
		want := 1
		if b.Driver == "sqlite" {
			want = 0
		}
		if got := find(ps, connector.SeverityError, "orders", "code"); len(got) != want || len(connector.Errors(ps)) != want {
			t.Errorf("hash into VARCHAR(16): want %d errors on orders.code, got %v", want, ps)
		}

		// One fixed value in every row of a unique column.
		ps = check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]")+`
  - name: orders
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {user_id: null, shipping_name: {fixed: "erased"}, ref: {fixed: "gone"}}
`))
		if got := find(ps, connector.SeverityError, "orders", "ref"); len(got) != 1 || len(connector.Errors(ps)) != 1 || !strings.Contains(got[0].Message, "unique") {
			t.Errorf("fixed value into a unique column: want one error on orders.ref, got %v", ps)
		}
	})
}

// Tables outside the map that look personal are warned about, with an
// entry to add; a table with a blocking key into a deleted table is an
// error; a table of product data is left alone.
func TestCheckUnmappedPersonalTables(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		_, dsn := newDB(t, b, slices.Concat(usersDDL, []string{
			`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT, FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL)`,
			`CREATE TABLE newsletter (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, first_name VARCHAR(64))`,
			`CREATE TABLE login_log (id BIGINT PRIMARY KEY, user_id BIGINT, ip_address VARCHAR(64))`,
			`CREATE TABLE wishlist (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, FOREIGN KEY (user_id) REFERENCES users (id))`,
			`CREATE TABLE products (id BIGINT PRIMARY KEY, name VARCHAR(64), product_name VARCHAR(64), price BIGINT)`})...)
		ps := check(t, openMap(t, b, dsn, fmt.Sprintf(usersMap, "cascades: [invoices]")))
		w := find(ps, connector.SeverityWarning, "newsletter", "")
		if len(w) != 1 || !strings.Contains(w[0].Message, "email") || !strings.Contains(w[0].Suggestion, "identities: {email: email}") {
			t.Errorf("newsletter: want a warning suggesting identities: {email: email}, got %v", ps)
		}
		w = find(ps, connector.SeverityWarning, "login_log", "")
		if len(w) != 1 || !strings.Contains(w[0].Suggestion, "references: {column: user_id, table: users, to: id}") {
			t.Errorf("login_log: want a warning suggesting a reference to users, got %v", ps)
		}
		e := find(ps, connector.SeverityError, "wishlist", "user_id")
		if len(e) != 1 || !strings.Contains(e[0].Suggestion, "references: {column: user_id, table: users, to: id}") {
			t.Errorf("wishlist: want an error with a suggested entry, got %v", ps)
		}
		if p := find(ps, connector.SeverityWarning, "products", ""); len(p) != 0 {
			t.Errorf("products warned about: %v", p)
		}
		for _, p := range ps {
			if strings.Contains(p.String(), "@") {
				t.Errorf("problem holds a value: %s", p)
			}
		}
	})
}

// A match column without an index on a table larger than the threshold
// is warned about; an indexed one is not.
func TestCheckMissingIndex(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b,
			`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(32))`,
			`CREATE INDEX users_phone ON users (phone)`)
		// MariaDB stops recursion at 1000 rows by default: a square of
		// 0..999 makes enough.
		cte := `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)`
		sel := fmt.Sprintf(`SELECT a.i * 1000 + b.i, 'e', 'p' FROM n a, n b WHERE a.i * 1000 + b.i <= %d`, sqlconn.LargeTableRows)
		if b.Driver == "mysql" {
			s.exec(t, `INSERT INTO users (id, email, phone) `+cte+` `+sel)
		} else {
			s.exec(t, cte+` INSERT INTO users (id, email, phone) `+sel)
		}
		// The phone is stored in E.164 and so compared exactly, through
		// its index; the email case-insensitively, which its plain index
		// cannot serve.
		ps := check(t, openMap(t, b, dsn, `
  - name: users
    identities: {email: email, phone: phone, user_id: id}
    match: {phone: exact}
    action: delete
`))
		if w := find(ps, connector.SeverityWarning, "users", "email"); len(w) != 1 || !strings.Contains(w[0].Message, "index") {
			t.Errorf("want an index warning on users.email, got %v", ps)
		}
		if w := find(ps, connector.SeverityWarning, "users", "phone"); len(w) != 0 {
			t.Errorf("indexed phone warned about: %v", w)
		}
		if w := find(ps, connector.SeverityWarning, "users", "id"); len(w) != 0 {
			t.Errorf("primary key warned about: %v", w)
		}
	})
}

// A case-insensitive match is served by an index on lower(trim(col)) only,
// which map check names (PostgreSQL, SQLite) and then finds; the phone
// rule is served by no index, and map check says how to avoid the scan.
func TestCheckMatchRuleIndex(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		s, dsn := newDB(t, b,
			`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(32))`,
			`CREATE INDEX users_email ON users (email)`,
			`CREATE INDEX users_phone ON users (phone)`)
		cte := `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)`
		sel := fmt.Sprintf(`SELECT a.i * 1000 + b.i, 'e', 'p' FROM n a, n b WHERE a.i * 1000 + b.i <= %d`, sqlconn.LargeTableRows)
		if b.Driver == "mysql" {
			s.exec(t, `INSERT INTO users (id, email, phone) `+cte+` `+sel)
		} else {
			s.exec(t, cte+` INSERT INTO users (id, email, phone) `+sel)
		}
		doc := `
  - name: users
    identities: {email: email, phone: phone, user_id: id}
    action: delete
`
		ps := check(t, openMap(t, b, dsn, doc))
		email := find(ps, connector.SeverityWarning, "users", "email")
		if len(email) != 1 || !strings.Contains(email[0].Message, "lower(trim(email))") {
			t.Fatalf("want a warning naming lower(trim(email)) on users.email, got %v", ps)
		}
		phone := find(ps, connector.SeverityWarning, "users", "phone")
		if len(phone) != 1 || phone[0].Suggestion != "match: {phone: exact}" {
			t.Errorf("want a warning on users.phone suggesting match: {phone: exact}, got %v", phone)
		}
		if b.Driver == "mysql" {
			return // MariaDB has no expression indexes
		}
		// The index the warning names silences it.
		s.exec(t, `CREATE INDEX users_email_ci ON users (lower(trim(email)))`)
		ps = check(t, openMap(t, b, dsn, doc))
		if w := find(ps, connector.SeverityWarning, "users", "email"); len(w) != 0 {
			t.Errorf("users.email has its lower(trim()) index, still warned about: %v", w)
		}
	})
}

// A map without a root table follows every identity column: the check
// warns once, naming the columns (never a value), and stays silent when
// a table is root: true or every table says what it follows.
func TestCheckRootlessMapFollowsEveryIdentity(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		_, dsn := newDB(t, b,
			`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(32))`,
			`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, phone VARCHAR(32),
				FOREIGN KEY (user_id) REFERENCES users (id))`)
		const m = `
  - name: users
    identities: {email: email, phone: phone, user_id: id}
    action: delete
    %s
  - name: orders
    identities: {phone: phone}
    references: {column: user_id, table: users}
    action: delete
    %s
`
		rootless := func(ps []connector.Problem) []connector.Problem {
			var out []connector.Problem
			for _, p := range find(ps, connector.SeverityWarning, "", "") {
				if strings.Contains(p.Message, "root: true") {
					out = append(out, p)
				}
			}
			return out
		}

		ps := check(t, openMap(t, b, dsn, fmt.Sprintf(m, "", "")))
		w := rootless(ps)
		if len(w) != 1 || len(ps) != 1 {
			t.Fatalf("rootless map: want exactly one warning, got %v", ps)
		}
		for _, want := range []string{"(orders.phone, users.email, users.id, users.phone)", "both people are erased", "held as ambiguous"} {
			if !strings.Contains(w[0].Message, want) {
				t.Errorf("rootless map: warning lacks %q: %s", want, w[0].Message)
			}
		}

		if ps := check(t, openMap(t, b, dsn, fmt.Sprintf(m, "root: true", ""))); len(ps) != 0 {
			t.Errorf("users root: true: want no problem, got %v", ps)
		}
		if ps := check(t, openMap(t, b, dsn, fmt.Sprintf(m, "follow: [email, id]", "follow: []"))); len(ps) != 0 {
			t.Errorf("explicit follow: want no problem, got %v", ps)
		}
		// follow: set on one table leaves the other's columns followed.
		if w := rootless(check(t, openMap(t, b, dsn, fmt.Sprintf(m, "follow: [email, id]", "")))); len(w) != 1 || !strings.Contains(w[0].Message, "(orders.phone)") {
			t.Errorf("orders without follow: want a warning naming orders.phone, got %v", w)
		}
	})
}
