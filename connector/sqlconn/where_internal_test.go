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
		for _, d := range dialects {
			c := &Connector{d: d}
			q := &query{d: d}
			w := c.where(q, tables[0], v, s) // items: two hops
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
