package sqlconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

// Whatever the values, they travel only as arguments, unchanged: the
// statement text has exactly one placeholder per argument, and it is the
// same text as for stand-in values that the columns' types treat alike
// (only whether a value can equal a column's values shapes the text). A
// search for the value in the text would be wrong: a '"' value is in every
// quoted identifier.
func FuzzWhere(f *testing.F) {
	f.Add("alice@example.com", "42", "7")
	f.Add("x' OR '1'='1", `"; DROP TABLE users; --`, `"`)
	f.Add("\u0430lice@example.com", "-9223372036854775808", "0019")
	f.Add(`"users"`, "`id`", "1) OR (1=1")
	f.Fuzz(func(t *testing.T, email, id, erased string) {
		tables := shopTables(t)
		items, orders, users := tables[0], tables[1], tables[2]
		s := schema{
			"users":  {"id": {kind: kindInt}, "email": {kind: kindText}},
			"orders": {"id": {kind: kindInt}, "user_id": {kind: kindText}},
			"items":  {"order_id": {kind: kindInt}},
		}
		ids := []lethe.Identity{{Type: "email", Value: email}, {Type: "user_id", Value: id}}
		for _, confirmed := range []bool{true, false} {
			// Confirmed, the email column is matched by keys found in Go
			// (one here); otherwise by SQL, like user_id and the values
			// the ledger kept of erased orders.
			matcher := func(ids []lethe.Identity, erased string) *matcher {
				m := &matcher{v: valuesOf(ids), erased: map[*table]map[string][]string{orders: {"id": {erased}}}}
				if confirmed {
					m.confirmed = map[*table]map[string]bool{users: {"email": true}}
					m.keys = map[*table]map[string][][]any{users: {"email": {{int64(7)}}}}
				}
				return m
			}
			for _, d := range dialects {
				c := &Connector{d: d}
				q := &query{d: d}
				w := c.where(q, items, matcher(ids, erased), s) // items: two hops
				marks := strings.Count(w, "?")
				if d.name == "postgres" {
					marks = strings.Count(w, "$")
				}
				if marks != len(q.args) {
					t.Fatalf("%s: %d placeholders for %d args in %s", d.name, marks, len(q.args), w)
				}
				sq := &query{d: d}
				if sw := c.where(sq, items, matcher(standIns(ids), standIn(erased)), s); sw != w || len(sq.args) != len(q.args) {
					t.Fatalf("%s: the values shaped the statement:\n%s\nstand-ins give\n%s", d.name, w, sw)
				}
				args := flatArgs(q.args)
				for _, a := range args {
					if a, ok := a.(string); ok && a != email && a != id && a != erased {
						t.Fatalf("%s: argument %q is none of the values", d.name, a)
					}
				}
				if !confirmed && email != "" && !slices.Contains(args, any(email)) {
					t.Fatalf("%s: the email is not an argument of %s (args %q)", d.name, w, q.args)
				}
			}
		}
	})
}

// standIn is a value that every column kind keeps or drops as it does v
// (typed), so a statement built from it has the same text as from v.
func standIn(v string) string {
	_, err := strconv.ParseInt(v, 10, 64)
	isInt, isUUID := err == nil, uuidLike.MatchString(v)
	switch {
	case v == "":
		return ""
	case isInt && isUUID: // 32 digits, leading zeros
		return "00000000000000000000000000000000"
	case isUUID:
		return "00000000-0000-0000-0000-000000000000"
	case isInt:
		return "1"
	}
	return "x"
}

// standIns replaces each identity's value by its standIn.
func standIns(ids []lethe.Identity) []lethe.Identity {
	out := make([]lethe.Identity, len(ids))
	for i, id := range ids {
		out[i] = lethe.Identity{Type: id.Type, Value: standIn(id.Value)}
	}
	return out
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

// flatArgs lists the values of args, those of PostgreSQL's array
// parameters (query.in) one by one.
func flatArgs(args []any) []any {
	var out []any
	for _, a := range args {
		switch a := a.(type) {
		case []any:
			out = append(out, a...)
		case []string:
			for _, v := range a {
				out = append(out, v)
			}
		default:
			out = append(out, a)
		}
	}
	return out
}
