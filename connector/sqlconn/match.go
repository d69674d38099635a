package sqlconn

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
)

// Match rules: how an identity column's stored values are compared with
// the subject's canonical values (see the package documentation).
const (
	MatchExact           = "exact"
	MatchCaseInsensitive = "case_insensitive"
	MatchPhone           = "phone"
)

type rule string

// defaultRule is the rule of an identity type when the map names none:
// emails are compared case-insensitively, phones by their E.164 form,
// everything else exactly.
func defaultRule(typ lethe.IdentityType) rule {
	switch typ {
	case lethe.IdentityEmail:
		return MatchCaseInsensitive
	case lethe.IdentityPhone:
		return MatchPhone
	}
	return MatchExact
}

// compileMatching fills each table's rules and followed columns and checks
// match, follow and root.
func compileMatching(tables []*table, fail func(format string, args ...any)) {
	hasRoot := slices.ContainsFunc(tables, func(t *table) bool { return t.Root })
	for _, t := range tables {
		tfail := func(format string, args ...any) { fail("table %q: "+format, append([]any{t.Name}, args...)...) }
		t.rules = map[string]rule{}
		t.follow = map[string]bool{}
		typeOf := map[string]lethe.IdentityType{}
		for typ, col := range t.Identities {
			typeOf[col] = typ
		}
		for typ, col := range t.Identities {
			t.rules[col] = defaultRule(typ)
		}
		for col, r := range t.Match {
			if _, ok := typeOf[col]; !ok {
				tfail("match names %q, which is not one of its identity columns", col)
				continue
			}
			switch r {
			case MatchExact, MatchCaseInsensitive, MatchPhone:
				t.rules[col] = rule(r)
			default:
				tfail("match %q for column %q is not a rule (use exact, case_insensitive or phone)", r, col)
			}
		}
		switch {
		case t.Follow != nil:
			for _, col := range t.Follow {
				if _, ok := typeOf[col]; !ok {
					tfail("follow names %q, which is not one of its identity columns", col)
					continue
				}
				t.follow[col] = true
			}
		case t.Root || !hasRoot:
			for _, col := range t.Identities {
				t.follow[col] = true
			}
		}
		if t.Root && len(t.Identities) == 0 {
			tfail("root needs identity columns (the account's id, email...)")
		}
	}
}

// canonical returns a stored value in the form the subject's values have
// under rule r, and whether it has one (a malformed stored phone has none).
func canonical(r rule, region, stored string) (string, bool) {
	switch r {
	case MatchCaseInsensitive:
		s := strings.ToLower(strings.TrimSpace(stored))
		return s, s != ""
	case MatchPhone:
		return lethe.CanonicalPhone(stored, region)
	}
	return stored, stored != ""
}

// matcher is what one operation (a Resolve, Plan, Erase or Verify call)
// knows about the subject's rows: their values, and for each identity
// column whose rule SQL cannot decide exactly, the primary keys of the rows
// confirmed in Go. Rows are then selected by those keys, so every later
// statement of the operation (children found through parents included) acts
// on exactly the confirmed rows.
type matcher struct {
	v values
	// keys holds, per table and confirmed column, the keys of the rows
	// whose value matched; a confirmed column absent from it matched none.
	keys      map[*table]map[string][][]any
	confirmed map[*table]map[string]bool
	// erased holds, per parent table and referenced column, the values of
	// the rows this request already erased (from the ledger), so that
	// children are found by them even once the parent row is gone.
	erased map[*table]map[string][]string
}

// maxConfirmedRows bounds the rows one identity column may confirm for one
// subject: a value shared by more is certainly not one person's.
const maxConfirmedRows = 100000

// confirmedInGo reports whether column col of t is matched by keys
// confirmed in Go rather than by an SQL comparison: phones always (SQL
// cannot run libphonenumber), case-insensitive text always (lower() differs
// between databases and collations), and exact text on MySQL, whose
// collations compare case- and accent-insensitively ("jose" = "José").
func (c *Connector) confirmedInGo(t *table, col string, s schema) bool {
	switch t.rules[col] {
	case MatchPhone, MatchCaseInsensitive:
		return true
	}
	return c.d.name == "mysql" && s.kind(t.Name, col) == kindText
}

// match builds the matcher for values v: one candidate query per confirmed
// column holding a type the subject has.
func (c *Connector) match(ctx context.Context, v values, s schema) (*matcher, error) {
	return c.matchTables(ctx, v, s, c.tables)
}

// matchTables is match for the given tables only; where must then be
// asked only about them (and the tables they reference, if listed).
func (c *Connector) matchTables(ctx context.Context, v values, s schema, tables []*table) (*matcher, error) {
	m := &matcher{v: v, keys: map[*table]map[string][][]any{}, confirmed: map[*table]map[string]bool{}}
	for _, t := range tables {
		for _, typ := range t.idTypes {
			col := t.Identities[typ]
			if !c.confirmedInGo(t, col, s) {
				continue
			}
			if m.confirmed[t] == nil {
				m.confirmed[t] = map[string]bool{}
			}
			m.confirmed[t][col] = true
			keys, err := c.candidates(ctx, t, col, v[typ], s)
			if err != nil {
				return nil, fmt.Errorf("match %q.%q: %w", t.Name, col, err)
			}
			if len(keys) > 0 {
				if m.keys[t] == nil {
					m.keys[t] = map[string][][]any{}
				}
				m.keys[t][col] = keys
			}
		}
	}
	return m, nil
}

// candidates selects the rows of t whose column col may hold one of vals
// (an SQL filter that never misses a match) and keeps those whose
// canonical value is one of them, returning their primary keys.
func (c *Connector) candidates(ctx context.Context, t *table, col string, vals []string, s schema) ([][]any, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	r := t.rules[col]
	want := map[string]bool{}
	q := &query{d: c.d}
	var conds []string
	switch r {
	case MatchPhone:
		digits := c.d.digits(c.d.quote(col))
		for _, v := range vals {
			nsn, ok := lethe.PhoneNationalNumber(v)
			if !ok {
				continue
			}
			want[v] = true
			// Every written form of the number holds its national
			// significant number as a run of digits once separators are
			// gone; CanonicalPhone then decides.
			conds = append(conds, fmt.Sprintf("%s LIKE %s", digits, q.arg("%"+nsn+"%")))
		}
	case MatchCaseInsensitive:
		args := typed(vals, s.kind(t.Name, col))
		ph := make([]string, 0, len(args))
		for _, a := range args {
			lv := strings.ToLower(strings.TrimSpace(fmt.Sprint(a)))
			want[lv] = true
			ph = append(ph, q.arg(lv))
		}
		if len(ph) > 0 {
			conds = append(conds, fmt.Sprintf("%s IN (%s)", c.d.lowerTrim(c.d.quote(col)), strings.Join(ph, ", ")))
		}
	default:
		args := typed(vals, s.kind(t.Name, col))
		ph := make([]string, 0, len(args))
		for _, a := range args {
			want[fmt.Sprint(a)] = true
			ph = append(ph, q.arg(a))
		}
		if len(ph) > 0 {
			conds = append(conds, fmt.Sprintf("%s IN (%s)", c.d.quote(col), strings.Join(ph, ", ")))
		}
	}
	if len(conds) == 0 {
		return nil, nil
	}
	cols := make([]string, 0, len(t.key)+1)
	for _, k := range t.key {
		cols = append(cols, c.d.quote(k))
	}
	cols = append(cols, c.d.quote(col))
	stmt := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), c.d.quote(t.Name), strings.Join(conds, " OR "))
	rows, err := c.db.QueryContext(ctx, stmt, q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys [][]any
	for rows.Next() {
		dst := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range dst {
			ptrs[i] = &dst[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		stored, ok := text(dst[len(t.key)])
		if !ok {
			continue
		}
		if cv, ok := canonical(r, c.region, stored); !ok || !want[cv] {
			continue
		}
		if len(keys) == maxConfirmedRows {
			return nil, fmt.Errorf("more than %d rows match one identity column; check the data map", maxConfirmedRows)
		}
		keys = append(keys, dst[:len(t.key)])
	}
	return keys, rows.Err()
}

// keyTerm writes "key IN (...)" for confirmed keys, with row values for a
// composite key.
func (c *Connector) keyTerm(q *query, t *table, keys [][]any) string {
	return fmt.Sprintf("%s IN (%s)", c.d.keyCols(t.key), q.tupleList(keys))
}
