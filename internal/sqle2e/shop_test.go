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
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

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
  - name: ticket_messages
    references: {column: ticket_id, table: support_tickets}
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

// newShop creates the shared shop (shopdb) on a fresh database of b with
// users generated users.
func newShop(tb testing.TB, b testdb.TargetDB, users int64) *shop {
	tb.Helper()
	seeded := shopdb.New(tb, b, users)
	s := &shop{b: b, dsn: seeded.DSN, db: seeded.DB, users: users}
	// The map matches emails case-insensitively, as lower(trim(email)):
	// the indexes `lethe map check` asks for on tables this size. MariaDB
	// has no expression indexes; there every match scans.
	if b.Driver != "mysql" {
		for _, ix := range ciIndexes {
			s.exec(tb, `CREATE INDEX `+ix.name+` ON `+ix.table+` (lower(trim(email)))`)
		}
	}
	return s
}

// person is a user added beside the generated ones, for hostile values.
type person = shopdb.Person

// add inserts p with the shared shop's full set of rows for a named
// person (ids far above the generated ones).
func (s *shop) add(tb testing.TB, p person) {
	tb.Helper()
	(&shopdb.Shop{B: s.b, DSN: s.dsn, DB: s.db, Users: s.users}).Add(tb, p)
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
	for _, t := range shopdb.Tables {
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
	for _, tbl := range shopdb.Tables {
		if bo[tbl] != ao[tbl] {
			t.Errorf("%s: other users' rows changed: before %d rows (sha256 %s), after %d rows (sha256 %s)",
				tbl, bo[tbl].rows, bo[tbl].sum, ao[tbl].rows, ao[tbl].sum)
		}
	}
	for owner := range subjects {
		for _, tbl := range []string{"users", "addresses", "order_items", "support_tickets", "ticket_messages"} {
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
	for _, t := range shopdb.Tables {
		out[t] = int64(len(d.of(t, owner)))
	}
	return out
}

func ctx() context.Context { return context.Background() }
