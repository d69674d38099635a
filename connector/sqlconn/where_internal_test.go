package sqlconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

func shopTables(t testing.TB) []*table {
	t.Helper()
	o := Options{Driver: "sqlite", DSN: "x.db", Tables: []Table{
		{Name: "users", Identities: map[lethe.IdentityType]string{"email": "email", "user_id": "id"}, Action: lethe.ActionDelete},
		{Name: "orders", References: References{{Column: "user_id", Table: "users"}}, Action: lethe.ActionDelete},
		{Name: "items", References: References{{Column: "order_id", Table: "orders"}}, Action: lethe.ActionDelete},
	}}
	tables, err := compile("shop", &o)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// Whatever the values, they travel only as arguments: the statement text
// has exactly one placeholder per argument and never a quoting value.
func FuzzWhere(f *testing.F) {
	f.Add("alice@example.com", "42")
	f.Add("x' OR '1'='1", `"; DROP TABLE users; --`)
	f.Add("\u0430lice@example.com", "-9223372036854775808")
	f.Fuzz(func(t *testing.T, email, id string) {
		tables := shopTables(t)
		s := schema{"users": {"id": {kind: kindInt}, "email": {kind: kindText}}}
		v := valuesOf([]lethe.Identity{{Type: "email", Value: email}, {Type: "user_id", Value: id}})
		users := tables[2]
		// The email column is matched by keys confirmed in Go (one here);
		// user_id by SQL.
		m := &matcher{v: v,
			confirmed: map[*table]map[string]bool{users: {"email": true}},
			keys:      map[*table]map[string][][]any{users: {"email": {{int64(7)}}}}}
		for _, d := range dialects {
			c := &Connector{d: d}
			q := &query{d: d}
			w := c.where(q, tables[0], m, s) // items: two hops
			marks := strings.Count(w, "?")
			if d.name == "postgres" {
				marks = strings.Count(w, "$")
			}
			if marks != len(q.args) {
				t.Fatalf("%s: %d placeholders for %d args in %s", d.name, marks, len(q.args), w)
			}
			for _, a := range q.args {
				// Only quote-bearing values: a plain word may be a table name.
				if s, ok := a.(string); ok && strings.ContainsAny(s, `'";`) && strings.Contains(w, s) {
					t.Fatalf("%s: value in statement text: %s", d.name, w)
				}
			}
		}
	})
}

func TestChildrenFirst(t *testing.T) {
	var got []string
	for _, tb := range shopTables(t) {
		got = append(got, tb.Name)
	}
	if strings.Join(got, ",") != "items,orders,users" {
		t.Errorf("order = %v, want children before parents", got)
	}
}

func TestRedact(t *testing.T) {
	err := fmt.Errorf("query: invalid input %q: %w", "alice@example.com", context.Canceled)
	ids := []lethe.Identity{{Type: lethe.IdentityEmail, Value: "alice@example.com"}}
	r := redact(connector.Permanent(err), ids)
	if strings.Contains(r.Error(), "alice") || !errors.Is(r, context.Canceled) || !connector.IsPermanent(r) {
		t.Errorf("redact = %v (canceled %v, permanent %v)", r, errors.Is(r, context.Canceled), connector.IsPermanent(r))
	}
	plain := errors.New("no values here")
	if redact(plain, ids) != plain {
		t.Error("redact replaced an error without values")
	}
}

// Derived pseudonyms of identity columns are computed from the canonical
// form: case variants of one address, and the ways of writing one phone,
// get one pseudonym; other columns keep their value as it is.
func TestPseudonymOfCanonicalForm(t *testing.T) {
	o := Options{Driver: "sqlite", DSN: "x.db", HashKey: "0123456789abcdef-k", DefaultRegion: "GB", Tables: []Table{{
		Name: "orders", Identities: map[lethe.IdentityType]string{"email": "email", "phone": "phone", "x-ref": "ref"},
		Action: lethe.ActionPseudonymize, Columns: map[string]Strategy{"email": {Kind: StrategyHash}, "phone": {Kind: StrategyHash}, "ref": {Kind: StrategyHash}, "note": {Kind: StrategyHash}},
	}}}
	tables, err := compile("shop", &o)
	if err != nil {
		t.Fatal(err)
	}
	c := &Connector{key: []byte(o.HashKey), region: o.DefaultRegion}
	pseudo := func(col, v string) any {
		p, err := c.pseudonym(Strategy{Kind: StrategyHash}, c.pseudonymInput(tables[0], col, v))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if a, b := pseudo("email", "Alice.Smith@Example.com"), pseudo("email", " alice.smith@example.COM"); a != b {
		t.Errorf("email case variants got different pseudonyms")
	}
	if a, b := pseudo("phone", "+44 7911 123456"), pseudo("phone", "07911-123-456"); a != b {
		t.Errorf("phone formats got different pseudonyms")
	}
	if a, b := pseudo("ref", "AB-1"), pseudo("ref", "ab-1"); a == b {
		t.Errorf("an exact column's case variants got one pseudonym")
	}
	if a, b := pseudo("note", "Hello"), pseudo("note", "hello"); a == b {
		t.Errorf("a non-identity column was canonicalised")
	}
}
