package sqlconn

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

const lookupMap = `
driver: %s
dsn: %s
hash_key: 0123456789abcdef-test-key
tables:
  - {name: users, identities: {email: email, phone: phone, user_id: id}, action: delete}
  - {name: orders, identities: {email: email}, references: {column: user_id, table: users}, action: delete}
  - {name: support_tickets, identities: {email: email}, action: delete}
`

// A candidate statement carries at most the dialect's parameters: the
// columns' candidate queries are split between statements, a column's own
// values too when they alone are too many, and the rows confirmed are
// those of one statement per column; a resolve's reads of the tables'
// followed columns are split by table. The limit is lowered here so that
// a few values need many statements.
func TestLookupSplitsAtParameterLimit(t *testing.T) {
	testdb.ForEachTargetDB(t, func(t *testing.T, b testdb.TargetDB) {
		ctx := context.Background()
		s := shopdb.New(t, b, 12)
		// User 1's order under another address: a resolve finds it only
		// by reading orders.
		s.Exec(t, `INSERT INTO orders (id, user_id, email, seed_owner) VALUES (?, ?, ?, ?)`, 100000, 1, "Second.Address@example.com", 1)
		c, err := New(ctx, connector.Target{Name: "shop", Kind: Kind, Decode: func(v any) error {
			return yaml.Unmarshal([]byte(fmt.Sprintf(lookupMap, b.Driver, strconv.Quote(s.DSN))), v)
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sch, err := c.loadSchema(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v := values{}
		for _, i := range []int{1, 2, 6, 11, 99} { // user 99 does not exist
			v[lethe.IdentityEmail] = append(v[lethe.IdentityEmail], fmt.Sprintf(" User%d@Example.com", i))
			v[lethe.IdentityPhone] = append(v[lethe.IdentityPhone], fmt.Sprintf("+49151%d", 10000000+i))
		}
		want, err := c.match(ctx, v, sch, nil)
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, cols := range want.keys {
			for _, keys := range cols {
				rows += len(keys)
			}
		}
		// users (email, phone), orders and tickets found by email.
		if len(want.keys) != 3 || rows < 16 {
			t.Fatalf("the reference lookup found %d rows in %d tables: %v", rows, len(want.keys), want.keys)
		}
		// A resolve's reads of the followed columns are split by table.
		subj := connector.Subject{RequestID: "req-split", Identities: []lethe.Identity{
			{Type: lethe.IdentityEmail, Value: "user1@example.com"}, {Type: lethe.IdentityEmail, Value: "user6@example.com"}}}
		resolved, err := c.ResolveSubject(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(resolved.Identities, lethe.Identity{Type: lethe.IdentityEmail, Value: "second.address@example.com"}) {
			t.Fatalf("the reference resolve found %v", resolved.Identities)
		}
		for _, limit := range []int{1, 2, 3, 5, 7} {
			c.params = limit
			got, err := c.match(ctx, v, sch, nil)
			if err != nil {
				t.Fatalf("limit %d: %v", limit, err)
			}
			if fmt.Sprint(keysByName(got)) != fmt.Sprint(keysByName(want)) {
				t.Errorf("limit %d: matched %v, want %v", limit, keysByName(got), keysByName(want))
			}
			r, err := c.ResolveSubject(ctx, subj)
			if err != nil {
				t.Fatalf("limit %d: resolve: %v", limit, err)
			}
			if fmt.Sprint(r) != fmt.Sprint(resolved) {
				t.Errorf("limit %d: resolved %v, want %v", limit, r, resolved)
			}
		}
	})
}

// keysByName is a matcher's keys by table name, for comparison.
func keysByName(m *matcher) map[string]map[string]string {
	out := map[string]map[string]string{}
	for t, cols := range m.keys {
		out[t.Name] = map[string]string{}
		for col, keys := range cols {
			set := map[string]bool{}
			for _, k := range keys {
				set[fmt.Sprint(k...)] = true
			}
			out[t.Name][col] = fmt.Sprint(set)
		}
	}
	return out
}
