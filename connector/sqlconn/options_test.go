package sqlconn_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func target(doc string) connector.Target {
	return connector.Target{Name: "shop", Kind: sqlconn.Kind, Decode: func(v any) error {
		return yaml.Unmarshal([]byte(doc), v)
	}}
}

func TestInfo(t *testing.T) {
	in := sqlconn.Info()
	if in.Kind != "sql" || in.New == nil {
		t.Fatalf("Info() = %+v", in)
	}
	if _, err := connector.NewRegistry(in); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsDecode(t *testing.T) {
	// YAML null reaches the decoder as the zero Strategy, which means null.
	var o sqlconn.Options
	doc := `
driver: sqlite
dsn: x.db
tables:
  - name: orders
    references: {column: user_id, table: users}
    columns: {a: null, b: {fixed: "erased"}, c: hash, d: {fixed: 0}}
  - name: tickets
    references: [{column: order_id, table: orders}, {column: user_id, table: users, to: uid}]
    until: 2036-01-01
`
	if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatal(err)
	}
	cols := o.Tables[0].Columns
	if cols["a"] != (sqlconn.Strategy{}) || cols["b"] != (sqlconn.Strategy{Kind: sqlconn.StrategyFixed, Value: "erased"}) ||
		cols["c"].Kind != sqlconn.StrategyHash || cols["d"].Value != "0" {
		t.Errorf("columns = %+v", cols)
	}
	if len(o.Tables[0].References) != 1 || len(o.Tables[1].References) != 2 || o.Tables[1].References[1].To != "uid" {
		t.Errorf("references = %+v, %+v", o.Tables[0].References, o.Tables[1].References)
	}
	if o.Tables[1].Until != "2036-01-01" {
		t.Errorf("until = %q", o.Tables[1].Until)
	}
}

func TestNewRejects(t *testing.T) {
	const head = "driver: sqlite\ndsn: x.db\nhash_key: 0123456789abcdef\ntables:\n"
	const users = "  - {name: users, identities: {email: email}, action: delete}\n"
	tests := []struct {
		name, doc, want string
	}{
		{"driver", "driver: oracle\ndsn: x\ntables:\n" + users, `driver "oracle" is not supported`},
		{"dsn", "driver: sqlite\ntables:\n" + users, "dsn is required"},
		{"no tables", "driver: sqlite\ndsn: x.db\n", "no tables"},
		{"batch", "driver: sqlite\ndsn: x.db\nbatch_size: -1\ntables:\n" + users, "batch_size -1 is out of range"},
		{"bad name", head + "  - {name: 'users; drop', identities: {email: email}, action: delete}\n", "is not a plain identifier"},
		{"bad column", head + "  - {name: users, identities: {email: 'e mail'}, action: delete}\n", `identity column "e mail"`},
		{"bad identity type", head + "  - {name: users, identities: {ssn: ssn}, action: delete}\n", `identity type "ssn" is not supported`},
		{"twice", head + users + users, `table "users" is listed twice`},
		{"no action", head + "  - {name: users, identities: {email: email}}\n", `table "users": action is required`},
		{"bad action", head + "  - {name: users, identities: {email: email}, action: shred}\n", `action "shred" is not supported`},
		{"retain without reason", head + "  - {name: users, identities: {email: email}, action: retain}\n", "retain needs a reason"},
		{"bad until", head + "  - {name: users, identities: {email: email}, action: retain, reason: tax, until: soon}\n", `until "soon" is not a date`},
		{"pseudonymize without columns", head + "  - {name: users, identities: {email: email}, action: pseudonymize}\n", "pseudonymize needs columns"},
		{"unknown strategy", head + "  - {name: users, identities: {email: email}, action: pseudonymize, columns: {email: shred}}\n", `unknown strategy "shred"`},
		{"pseudonymize keeps identity", head + "  - {name: users, identities: {email: email, phone: phone}, action: pseudonymize, columns: {email: null}}\n", `must rewrite identity column "phone"`},
		{"pseudonymize keeps reference", head + users + "  - {name: orders, references: {column: user_id, table: users}, action: pseudonymize, columns: {note: null}}\n", `must rewrite reference column "user_id"`},
		{"pseudonymize primary key", head + "  - {name: users, identities: {email: email}, action: pseudonymize, columns: {email: null, id: null}}\n", `"id" is the primary key`},
		{"columns on delete", head + "  - {name: users, identities: {email: email}, action: delete, columns: {email: null}}\n", "columns apply only to action pseudonymize"},
		{"hash without key", "driver: sqlite\ndsn: x.db\ntables:\n  - {name: users, identities: {email: email}, action: pseudonymize, columns: {email: hash}}\n", "hash_key of at least 16 bytes"},
		{"unknown parent", head + "  - {name: orders, references: {column: user_id, table: people}, action: delete}\n", `references unknown table "people"`},
		{"unreachable", head + users + "  - {name: logs, action: delete}\n", `table "logs": no identity reaches it`},
		{"cycle", head + users +
			"  - {name: a, references: [{column: b_id, table: b}, {column: user_id, table: users}], action: delete}\n" +
			"  - {name: b, references: {column: a_id, table: a}, action: delete}\n", "reference cycle: a -> b -> a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sqlconn.New(context.Background(), target(tt.doc))
			if err == nil {
				t.Fatalf("New accepted the map, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `target "shop"`) {
				t.Errorf("New error:\n%v\nwant it to name the target and contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateLiveSchema(t *testing.T) {
	path := testdb.SQLitePath(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, note TEXT)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	head := "driver: sqlite\ndsn: " + path + "\nhash_key: 0123456789abcdef\ntables:\n"
	const users = "  - {name: users, identities: {email: email}, action: delete}\n"
	tests := []struct {
		name, doc, want string
	}{
		{"ok", head + users + "  - {name: orders, references: {column: user_id, table: users}, action: pseudonymize, columns: {user_id: null, note: hash}}\n", ""},
		{"missing table", head + users + "  - {name: carts, references: {column: user_id, table: users}, action: delete}\n", `table "carts": does not exist`},
		{"missing identity column", head + "  - {name: users, identities: {email: email, phone: phone}, action: delete}\n", `phone identity column "phone" does not exist`},
		{"missing primary key", head + "  - {name: users, primary_key: uid, identities: {email: email}, action: delete}\n", `primary key column "uid" does not exist`},
		{"missing reference column", head + users + "  - {name: orders, references: {column: customer_id, table: users}, action: delete}\n", `reference column "customer_id" does not exist`},
		{"missing referenced column", head + users + "  - {name: orders, references: {column: user_id, table: users, to: uid}, action: delete}\n", `referenced column "users"."uid" does not exist`},
		{"missing pseudonymized column", head + users + "  - {name: orders, references: {column: user_id, table: users}, action: pseudonymize, columns: {user_id: null, name: null}}\n", `pseudonymized column "name" does not exist`},
		{"text into integer", head + users + "  - {name: orders, references: {column: user_id, table: users}, action: pseudonymize, columns: {user_id: random}}\n", `column "user_id" is INTEGER; strategy random writes text`},
		{"fixed text into integer", head + users + "  - {name: orders, references: {column: user_id, table: users}, action: pseudonymize, columns: {user_id: {fixed: none}}}\n", `the fixed value is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := sqlconn.New(context.Background(), target(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Validate(context.Background())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `target "shop"`) {
				t.Errorf("Validate error:\n%v\nwant it to name the target and contain %q", err, tt.want)
			}
		})
	}
}

// A table dropped after start is a permanent failure: retrying cannot fix it.
func TestMissingTableIsPermanent(t *testing.T) {
	path := testdb.SQLitePath(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)`); err != nil {
		t.Fatal(err)
	}
	c, err := sqlconn.New(context.Background(), target("driver: sqlite\ndsn: "+path+"\ntables:\n  - {name: users, identities: {email: email}, action: delete}\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := db.Exec(`DROP TABLE users`); err != nil {
		t.Fatal(err)
	}
	_, err = c.Erase(context.Background(), connector.Subject{Identities: nil})
	if err != nil {
		t.Fatalf("Erase with no identities: %v", err)
	}
	subj := connector.Subject{Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: "gone@example.com"}}}
	_, err = c.Erase(context.Background(), subj)
	if !connector.IsPermanent(err) {
		t.Fatalf("Erase on a dropped table: %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), "gone@example.com") {
		t.Errorf("error contains the identity value: %v", err)
	}
}

// The matching options are checked at start, each mistake named.
func TestMatchingOptionsRefused(t *testing.T) {
	const head = "driver: sqlite\ndsn: x.db\n"
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown rule": {head + `tables: [{name: users, identities: {email: email}, match: {email: fuzzy}, action: delete}]`,
			`match "fuzzy" for column "email" is not a rule`},
		"match on a non-identity column": {head + `tables: [{name: users, identities: {email: email}, match: {name: exact}, action: delete}]`,
			`match names "name"`},
		"follow a non-identity column": {head + `tables: [{name: users, identities: {email: email}, follow: [name], action: delete}]`,
			`follow names "name"`},
		"bad region": {head + "default_region: XX\n" + `tables: [{name: users, identities: {email: email}, action: delete}]`,
			`default_region "XX" is not a region code`},
		"negative follow limit": {head + "follow_limit: -1\n" + `tables: [{name: users, identities: {email: email}, action: delete}]`,
			`follow_limit -1 must be at least 1`},
		"root without identities": {head + `tables: [{name: users, identities: {email: email}, action: delete}, {name: a, root: true, references: {column: u, table: users}, action: delete}]`,
			`root needs identity columns`},
		"reference to a composite key without to": {head + `tables: [{name: lines, primary_key: [a, b], identities: {email: email}, action: delete}, {name: notes, references: {column: line, table: lines}, action: delete}]`,
			`say which column with to`},
		"key column twice": {head + `tables: [{name: lines, primary_key: [a, a], identities: {email: email}, action: delete}]`,
			`primary_key lists a column twice`},
		"pseudonymize a key column": {head + "hash_key: 0123456789abcdef-x\n" + `tables: [{name: lines, primary_key: [a, b], identities: {email: email}, action: pseudonymize, columns: {email: hash, b: null}}]`,
			`column "b" is the primary key`},
	} {
		_, err := sqlconn.New(context.Background(), target(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
		}
	}
	// A composite key decodes from a list, a single one from a name.
	var o sqlconn.Options
	if err := yaml.Unmarshal([]byte(`tables: [{name: a, primary_key: [x, y]}, {name: b, primary_key: id}]`), &o); err != nil {
		t.Fatal(err)
	}
	if len(o.Tables[0].PrimaryKey) != 2 || o.Tables[0].PrimaryKey[1] != "y" || len(o.Tables[1].PrimaryKey) != 1 {
		t.Errorf("primary keys = %v, %v", o.Tables[0].PrimaryKey, o.Tables[1].PrimaryKey)
	}
}
