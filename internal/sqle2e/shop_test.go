package sqle2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The shop's schema, portable across the three databases. Every table has
// seed_owner, the number of the user who owns the row (0: nobody), which
// lethe never reads: it lets the test tell whose row is whose after
// pseudonymisation cut the links.
var shopDDL = []string{
	`CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255), phone VARCHAR(32), customer_ref VARCHAR(256),
		name VARCHAR(255), seed_owner BIGINT NOT NULL)`,
	`CREATE TABLE addresses (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, street VARCHAR(255), seed_owner BIGINT NOT NULL,
		FOREIGN KEY (user_id) REFERENCES users (id))`,
	`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, email VARCHAR(255), shipping_name VARCHAR(255), total BIGINT,
		seed_owner BIGINT NOT NULL, FOREIGN KEY (user_id) REFERENCES users (id))`,
	`CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(64), qty INT, seed_owner BIGINT NOT NULL,
		FOREIGN KEY (order_id) REFERENCES orders (id))`,
	`CREATE TABLE support_tickets (id BIGINT PRIMARY KEY, email VARCHAR(255), order_id BIGINT, body VARCHAR(255),
		seed_owner BIGINT NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id))`,
	// No foreign key: invoices outlive the user they name.
	`CREATE TABLE invoices (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, amount BIGINT, seed_owner BIGINT NOT NULL)`,
}

// shopIndexes are the indexes lethe needs (docs/performance.md): one on
// every identity column and every reference column of the data map, or
// each erase scans whole tables.
var shopIndexes = []string{
	`CREATE INDEX users_email ON users (email)`,
	`CREATE INDEX users_phone ON users (phone)`,
	`CREATE INDEX users_customer_ref ON users (customer_ref)`,
	`CREATE INDEX addresses_user_id ON addresses (user_id)`,
	`CREATE INDEX orders_user_id ON orders (user_id)`,
	`CREATE INDEX orders_email ON orders (email)`,
	`CREATE INDEX order_items_order_id ON order_items (order_id)`,
	`CREATE INDEX support_tickets_email ON support_tickets (email)`,
	`CREATE INDEX support_tickets_order_id ON support_tickets (order_id)`,
	`CREATE INDEX invoices_user_id ON invoices (user_id)`,
}

var shopTables = []string{"users", "addresses", "orders", "order_items", "support_tickets", "invoices"}

const hashKey = "0123456789abcdef-e2e-hash-key"

// shopMap is the data map of the shop target; %s are the driver and the
// quoted DSN.
const shopMap = `
driver: %s
dsn: %s
hash_key: ` + hashKey + `
tables:
  - name: users
    identities: {email: email, phone: phone, user_id: id, x-customer_ref: customer_ref}
    action: delete
  - name: addresses
    references: {column: user_id, table: users}
    action: delete
  - name: orders
    identities: {email: email}
    references: {column: user_id, table: users}
    action: pseudonymize
    columns: {user_id: null, email: redact_email, shipping_name: null}
  - name: order_items
    references: {column: order_id, table: orders}
    action: delete
  - name: support_tickets
    identities: {email: email}
    references: {column: order_id, table: orders}
    action: delete
  - name: invoices
    references: {column: user_id, table: users}
    action: retain
    reason: "tax law: invoices kept 10 years"
`

// shop is one seeded database.
type shop struct {
	b     testdb.TargetDB
	dsn   string
	db    *sql.DB
	users int64
}

// mapYAML returns the shop's data map.
func (s *shop) mapYAML() string { return fmt.Sprintf(shopMap, s.b.Driver, strconv.Quote(s.dsn)) }

// q rewrites ? placeholders for the shop's database.
func (s *shop) q(stmt string) string { return s.b.Rebind(stmt) }

func (s *shop) exec(tb testing.TB, stmt string, args ...any) {
	tb.Helper()
	if _, err := s.db.Exec(s.q(stmt), args...); err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	}
}

// newShop creates the shop on a fresh database of b and seeds users users,
// each with the same pattern of rows (see seed).
func newShop(tb testing.TB, b testdb.TargetDB, users int64) *shop {
	tb.Helper()
	dsn, db := b.Open(tb)
	s := &shop{b: b, dsn: dsn, db: db, users: users}
	for _, stmt := range shopDDL {
		s.exec(tb, stmt)
	}
	s.seed(tb)
	for _, stmt := range shopIndexes {
		s.exec(tb, stmt)
	}
	return s
}

// seed fills the shop server-side (INSERT ... SELECT over a table of
// numbers), which takes well under a second for 10,000 users. User i has:
//   - a users row with email user<i>@example.com, phone +49151<10000000+i>,
//     customer_ref cref-<i>;
//   - two addresses, two invoices (retained);
//   - order 2i-1 linked by user_id and email, order 2i by user_id only,
//     and for i%5 == 1 a guest order 2N+i found by email only;
//   - two items per order;
//   - ticket 2i-1 found by email only, ticket 2i through order 2i only.
//
// Strangers (owner 0) for i%7 == 1 hold tickets from user<i>@example.co,
// one letter short of user i's address; and user1@example.com is a
// prefix of user10@example.com, so sloppy matching would show.
func (s *shop) seed(tb testing.TB) {
	tb.Helper()
	s.exec(tb, `CREATE TABLE nums (i BIGINT PRIMARY KEY)`)
	for lo := int64(1); lo <= s.users; lo += 1000 {
		var vals []string
		for i := lo; i < lo+1000 && i <= s.users; i++ {
			vals = append(vals, "("+strconv.FormatInt(i, 10)+")")
		}
		// The values are our own integers, so building the statement is safe.
		s.exec(tb, "INSERT INTO nums (i) VALUES "+strings.Join(vals, ", "))
	}
	n := strconv.FormatInt(s.users, 10)
	for _, stmt := range []string{
		`INSERT INTO users (id, email, phone, customer_ref, name, seed_owner)
			SELECT i, CONCAT('user', i, '@example.com'), CONCAT('+49151', 10000000 + i), CONCAT('cref-', i), CONCAT('Name ', i), i FROM nums`,
		`INSERT INTO addresses (id, user_id, street, seed_owner) SELECT 2*i-1, i, CONCAT(i, ' Main St'), i FROM nums`,
		`INSERT INTO addresses (id, user_id, street, seed_owner) SELECT 2*i, i, CONCAT(i, ' Side St'), i FROM nums`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT 2*i-1, i, CONCAT('user', i, '@example.com'), CONCAT('Ship ', i), 100 + i, i FROM nums`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT 2*i, i, NULL, CONCAT('Ship ', i), 200 + i, i FROM nums`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT 2*` + n + ` + i, NULL, CONCAT('user', i, '@example.com'), CONCAT('Guest ', i), 300 + i, i FROM nums WHERE i % 5 = 1`,
		`INSERT INTO order_items (id, order_id, sku, qty, seed_owner) SELECT 2*id-1, id, 'sku-a', 1, seed_owner FROM orders`,
		`INSERT INTO order_items (id, order_id, sku, qty, seed_owner) SELECT 2*id, id, 'sku-b', 2, seed_owner FROM orders`,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner)
			SELECT 2*i-1, CONCAT('user', i, '@example.com'), NULL, 'help', i FROM nums`,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner) SELECT 2*i, NULL, 2*i, 'where is my order', i FROM nums`,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner)
			SELECT 2*` + n + ` + i, CONCAT('user', i, '@example.co'), NULL, 'near miss', 0 FROM nums WHERE i % 7 = 1`,
		`INSERT INTO invoices (id, user_id, amount, seed_owner) SELECT 2*i-1, i, 1000 + i, i FROM nums`,
		`INSERT INTO invoices (id, user_id, amount, seed_owner) SELECT 2*i, i, 2000 + i, i FROM nums`,
		`DROP TABLE nums`,
	} {
		s.exec(tb, stmt)
	}
}

// person is a user added beside the generated ones, for hostile values.
type person struct {
	owner       int64 // the user id, also the seed_owner of every row
	email       any   // string or nil
	phone       any
	customerRef any
}

// add inserts p with the same pattern of rows as a generated user (ids
// far above the generated ones).
func (s *shop) add(tb testing.TB, p person) {
	tb.Helper()
	base := 100_000_000 + p.owner*100
	o := p.owner
	s.exec(tb, `INSERT INTO users (id, email, phone, customer_ref, name, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
		o, p.email, p.phone, p.customerRef, "Hostile "+strconv.FormatInt(o, 10), o)
	s.exec(tb, `INSERT INTO addresses (id, user_id, street, seed_owner) VALUES (?, ?, ?, ?)`, base+1, o, "1 Main St", o)
	s.exec(tb, `INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
		base+1, o, p.email, "Ship", 100, o)
	s.exec(tb, `INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) VALUES (?, ?, ?, ?, ?, ?)`,
		base+2, nil, p.email, "Guest", 200, o)
	s.exec(tb, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`, base+1, base+1, "sku-a", 1, o)
	s.exec(tb, `INSERT INTO order_items (id, order_id, sku, qty, seed_owner) VALUES (?, ?, ?, ?, ?)`, base+2, base+2, "sku-b", 1, o)
	s.exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`, base+1, p.email, nil, "help", o)
	s.exec(tb, `INSERT INTO support_tickets (id, email, order_id, body, seed_owner) VALUES (?, ?, ?, ?, ?)`, base+2, nil, base+1, "order", o)
	s.exec(tb, `INSERT INTO invoices (id, user_id, amount, seed_owner) VALUES (?, ?, ?, ?)`, base+1, o, 100, o)
}

// row is one row as text, with its owner.
type row struct {
	owner int64
	vals  []string // in the table's column order; "NULL" for NULL
}

// dump is the whole shop: per table, its columns and rows ordered by id.
type dump struct {
	cols map[string][]string
	rows map[string][]row
}

func (s *shop) dump(tb testing.TB) dump {
	tb.Helper()
	d := dump{cols: map[string][]string{}, rows: map[string][]row{}}
	for _, t := range shopTables {
		// Table names are our constants.
		rs, err := s.db.Query("SELECT * FROM " + t + " ORDER BY id")
		if err != nil {
			tb.Fatal(err)
		}
		cols, all := testdb.ScanRows(tb, rs)
		d.cols[t] = cols
		for _, vals := range all {
			r := row{vals: make([]string, len(cols))}
			for i, v := range vals {
				switch x := v.(type) {
				case nil:
					r.vals[i] = "NULL"
				case []byte:
					r.vals[i] = string(x)
				default:
					r.vals[i] = fmt.Sprint(x)
				}
				if cols[i] == "seed_owner" {
					r.owner, _ = strconv.ParseInt(r.vals[i], 10, 64)
				}
			}
			d.rows[t] = append(d.rows[t], r)
		}
	}
	return d
}

// digest is the checksum of a set of rows: SHA-256 over their text in id
// order, with the count for readable failures.
type digest struct {
	rows int
	sum  string
}

// others returns, per table, the digest of the rows not owned by any of
// owners.
func (d dump) others(owners map[int64]bool) map[string]digest {
	out := map[string]digest{}
	for t, rs := range d.rows {
		h := sha256.New()
		n := 0
		for _, r := range rs {
			if owners[r.owner] {
				continue
			}
			n++
			h.Write([]byte(strings.Join(r.vals, "\x1f") + "\x1e"))
		}
		out[t] = digest{rows: n, sum: hex.EncodeToString(h.Sum(nil))}
	}
	return out
}

// of returns the rows of table t owned by owner, as column -> value maps.
func (d dump) of(t string, owner int64) []map[string]string {
	var out []map[string]string
	for _, r := range d.rows[t] {
		if r.owner != owner {
			continue
		}
		m := map[string]string{}
		for i, c := range d.cols[t] {
			m[c] = r.vals[i]
		}
		out = append(out, m)
	}
	return out
}

// redactedEmail is what redact_email writes for email under hashKey.
func redactedEmail(email string) string {
	h := hmac.New(sha256.New, []byte(hashKey))
	h.Write([]byte(email))
	return "erased+" + hex.EncodeToString(h.Sum(nil))[:16] + "@invalid"
}

// checkErased compares the shop before and after erasing subjects: every
// other owner's rows are byte for byte the same (per-table checksums); the
// subjects' rows of delete tables are gone, their orders pseudonymised as
// mapped (links cut, email redacted, everything else kept) and their
// invoices untouched.
func checkErased(t *testing.T, before, after dump, subjects map[int64]bool) {
	t.Helper()
	bo, ao := before.others(subjects), after.others(subjects)
	for _, tbl := range shopTables {
		if bo[tbl] != ao[tbl] {
			t.Errorf("%s: other users' rows changed: before %d rows (sha256 %s), after %d rows (sha256 %s)",
				tbl, bo[tbl].rows, bo[tbl].sum, ao[tbl].rows, ao[tbl].sum)
		}
	}
	for owner := range subjects {
		for _, tbl := range []string{"users", "addresses", "order_items", "support_tickets"} {
			if n := len(after.of(tbl, owner)); n != 0 {
				t.Errorf("subject %d: %d rows left in %s", owner, n, tbl)
			}
		}
		if b, a := before.of("invoices", owner), after.of("invoices", owner); fmt.Sprint(b) != fmt.Sprint(a) || len(b) == 0 {
			t.Errorf("subject %d: retained invoices changed (or none seeded): before %v, after %v", owner, b, a)
		}
		b, a := before.of("orders", owner), after.of("orders", owner)
		if len(a) != len(b) || len(b) == 0 {
			t.Errorf("subject %d: %d orders before, %d after; pseudonymize must keep them", owner, len(b), len(a))
			continue
		}
		for i := range b {
			want := map[string]string{}
			for k, v := range b[i] {
				want[k] = v
			}
			want["user_id"] = "NULL"
			want["shipping_name"] = "NULL"
			if e := b[i]["email"]; e != "NULL" {
				want["email"] = redactedEmail(e)
			}
			if fmt.Sprint(want) != fmt.Sprint(a[i]) {
				t.Errorf("subject %d: order %s\n got  %v\n want %v", owner, b[i]["id"], a[i], want)
			}
		}
	}
}

// countRows returns how many rows each table holds, to size the report.
func countRows(d dump, owner int64) map[string]int64 {
	out := map[string]int64{}
	for _, t := range shopTables {
		out[t] = int64(len(d.of(t, owner)))
	}
	return out
}

func ctx() context.Context { return context.Background() }
