package sqlconn_test

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

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

const batchMap = `
driver: %s
dsn: %s
batch_size: 500
hash_key: 0123456789abcdef-test-key
tables:
  - name: notes
    primary_key: k
    identities: {email: email}
    action: pseudonymize
    columns: {email: redact_email, ref: hash, body: null, tag: {fixed: "gone"}}
  - name: marks
    primary_key: k
    identities: {email: email}
    action: delete
  - name: plain
    primary_key: k
    identities: {email: email}
    action: pseudonymize
    columns: {email: null, tag: {fixed: "gone"}}
`

// keyType is a primary key column type and how to make its i-th value.
type keyType struct {
	name string
	ddl  map[string]string // driver -> column type; absent: not run there
	key  func(i int) any
}

var keyTypes = []keyType{
	{"bigint", map[string]string{"postgres": "BIGINT", "mysql": "BIGINT", "sqlite": "INTEGER"},
		func(i int) any { return int64(900_000_000_000 + i) }},
	// Quotes, a backslash and non-ASCII: a key must come back as itself.
	{"text", map[string]string{"postgres": "VARCHAR(64)", "mysql": "VARCHAR(64)", "sqlite": "TEXT"},
		func(i int) any { return fmt.Sprintf(`k'"\ü-%04d`, i) }},
	{"uuid", map[string]string{"postgres": "UUID"},
		func(i int) any { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }},
	{"bytea", map[string]string{"postgres": "BYTEA"},
		func(i int) any { return []byte{0, '\\', 'x', byte(i >> 8), byte(i), 0xff} }},
}

// Batches of several hundred rows (two batches, several CASE statements on
// MySQL and SQLite): every row must get the value computed from its own
// old value, never its neighbour's, whatever the type of its key; other
// rows stay as they were.
func TestBatchesByKey(t *testing.T) {
	const mine, theirs = 600, 40
	const subject, other = "subject@example.com", "other@example.com"
	for _, b := range testdb.TargetDBs {
		for _, kt := range keyTypes {
			typ, ok := kt.ddl[b.Driver]
			if !ok {
				continue
			}
			t.Run(b.Driver+"/"+kt.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				dsn, db := b.Open(t)
				s := &shop{b: b, db: db}
				s.exec(t, `CREATE TABLE notes (k `+typ+` PRIMARY KEY, email VARCHAR(255), ref VARCHAR(255), body VARCHAR(255), tag VARCHAR(255))`)
				s.exec(t, `CREATE TABLE marks (k `+typ+` PRIMARY KEY, email VARCHAR(255))`)
				s.exec(t, `CREATE INDEX notes_email ON notes (email)`)
				s.exec(t, `CREATE INDEX marks_email ON marks (email)`)
				// Only constant strategies: no per-row values to carry.
				s.exec(t, `CREATE TABLE plain (k `+typ+` PRIMARY KEY, email VARCHAR(255), tag VARCHAR(255))`)
				for lo := 0; lo < mine+theirs; lo += 100 {
					var notes, marks []string
					var nargs, margs []any
					for i := lo; i < min(lo+100, mine+theirs); i++ {
						email := subject
						if i >= mine {
							email = other
						}
						notes = append(notes, "(?, ?, ?, ?, ?)")
						nargs = append(nargs, kt.key(i), email, "ref-"+strconv.Itoa(i), "body", "tag")
						marks = append(marks, "(?, ?)")
						margs = append(margs, kt.key(i), email)
					}
					s.exec(t, b.Rebind(`INSERT INTO notes VALUES `+strings.Join(notes, ", ")), nargs...)
					s.exec(t, b.Rebind(`INSERT INTO marks VALUES `+strings.Join(marks, ", ")), margs...)
					var plain []string
					var pargs []any
					for j := 0; j < len(margs); j += 2 {
						plain = append(plain, "(?, ?, ?)")
						pargs = append(pargs, margs[j], margs[j+1], "tag")
					}
					s.exec(t, b.Rebind(`INSERT INTO plain VALUES `+strings.Join(plain, ", ")), pargs...)
				}

				doc := fmt.Sprintf(batchMap, b.Driver, strconv.Quote(dsn))
				c, err := sqlconn.New(ctx, connector.Target{Name: "batch", Kind: sqlconn.Kind,
					Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) }})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if err := c.Validate(ctx); err != nil {
					t.Fatal(err)
				}
				subj := connector.Subject{Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: subject}}}
				rep, err := c.Erase(ctx, subj)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range rep.Items {
					if it.Rows != mine {
						t.Errorf("report: %d rows of %s, want %d", it.Rows, it.Object, mine)
					}
				}
				if err := c.Verify(ctx, subj); err != nil {
					t.Error(err)
				}
				if rep, err := c.Erase(ctx, subj); err != nil || rep.Total() != 0 {
					t.Errorf("second Erase: %d rows, %v; want 0", rep.Total(), err)
				}

				mac := func(v string) string {
					h := hmac.New(sha256.New, []byte("0123456789abcdef-test-key"))
					h.Write([]byte(v))
					return hex.EncodeToString(h.Sum(nil))
				}
				index := map[string]int{}
				for i := 0; i < mine+theirs; i++ {
					index[keyText(kt.key(i))] = i
				}
				rows, err := db.Query(`SELECT k, email, ref, body, tag FROM notes`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				n := 0
				for rows.Next() {
					var k any
					var email, ref, body, tag sql.NullString
					if err := rows.Scan(&k, &email, &ref, &body, &tag); err != nil {
						t.Fatal(err)
					}
					n++
					i, ok := index[keyText(k)]
					switch {
					case !ok:
						t.Errorf("row with key %q: not a key the test inserted", keyText(k))
					case i >= mine:
						if email.String != other || ref.String != "ref-"+strconv.Itoa(i) || body.String != "body" || tag.String != "tag" {
							t.Errorf("another subject's row %d changed: %v %v %v %v", i, email, ref, body, tag)
						}
					case ref.String != mac("ref-"+strconv.Itoa(i)):
						t.Errorf("row %d: ref %q is not the hash of its own ref", i, ref.String)
					case email.String != "erased+"+mac(subject)[:16]+"@invalid" || body.Valid || tag.String != "gone":
						t.Errorf("row %d: email %q body %v tag %q", i, email.String, body, tag.String)
					}
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				if n != mine+theirs {
					t.Errorf("notes: %d rows, want %d", n, mine+theirs)
				}
				var gone, kept int64
				if err := db.QueryRow(b.Rebind(`SELECT COUNT(*) FROM plain WHERE email IS NULL AND tag = ?`), "gone").Scan(&gone); err != nil {
					t.Fatal(err)
				}
				if err := db.QueryRow(b.Rebind(`SELECT COUNT(*) FROM plain WHERE email = ? AND tag = ?`), other, "tag").Scan(&kept); err != nil {
					t.Fatal(err)
				}
				if gone != mine || kept != theirs {
					t.Errorf("plain: %d rows pseudonymized, %d kept; want %d and %d", gone, kept, mine, theirs)
				}
				var left int64
				if err := db.QueryRow(`SELECT COUNT(*) FROM marks`).Scan(&left); err != nil {
					t.Fatal(err)
				}
				if left != theirs {
					t.Errorf("marks: %d rows left, want %d", left, theirs)
				}
			})
		}
	}
}

// keyText renders a key as inserted or as scanned back, for comparing.
func keyText(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}
