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
// column holding a type the subject has, for the values memo does not
// know yet. memo may be nil.
func (c *Connector) match(ctx context.Context, v values, s schema, memo matchMemo) (*matcher, error) {
	return c.matchTables(ctx, v, s, c.tables, memo)
}

// matchMemo holds what one operation's candidate queries confirmed, per
// table, column and canonical value, so that an operation that matches
// again (Resolve, round after round; a batch, subject after subject) asks
// the database only about values it has not asked about. It lives for one
// operation: a row written later must be found by the next one.
type matchMemo map[memoKey][][]any

type memoKey struct {
	t     *table
	col   string
	value string // canonical under the column's rule
}

// matchTables is match for the given tables only; where must then be
// asked only about them (and the tables they reference, if listed).
func (c *Connector) matchTables(ctx context.Context, v values, s schema, tables []*table, memo matchMemo) (*matcher, error) {
	if memo == nil {
		memo = matchMemo{}
	}
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
			keys, err := c.candidates(ctx, t, col, v[typ], s, memo)
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

// wanted returns the canonical forms of vals under the rule of column col
// of t, with the argument each is compared by in SQL, dropping values
// that cannot match (a phone without a national number, text for an
// integer column).
func (c *Connector) wanted(t *table, col string, vals []string, s schema) (canon []string, args []any) {
	switch t.rules[col] {
	case MatchPhone:
		for _, v := range vals {
			if nsn, ok := lethe.PhoneNationalNumber(v); ok && !slices.Contains(canon, v) {
				canon = append(canon, v)
				args = append(args, nsn)
			}
		}
	case MatchCaseInsensitive:
		for _, a := range typed(vals, s.kind(t.Name, col)) {
			if lv := strings.ToLower(strings.TrimSpace(fmt.Sprint(a))); !slices.Contains(canon, lv) {
				canon = append(canon, lv)
				args = append(args, lv)
			}
		}
	default:
		for _, a := range typed(vals, s.kind(t.Name, col)) {
			if v := fmt.Sprint(a); !slices.Contains(canon, v) {
				canon = append(canon, v)
				args = append(args, a)
			}
		}
	}
	return canon, args
}

// candidates returns the primary keys of the rows of t whose column col
// holds one of vals under its rule. Values memo knows are not asked
// again; the others are looked up in one query, an SQL filter that never
// misses a match, whose rows are kept when their canonical value is one
// of them.
func (c *Connector) candidates(ctx context.Context, t *table, col string, vals []string, s schema, memo matchMemo) ([][]any, error) {
	canon, args := c.wanted(t, col, vals, s)
	var keys [][]any
	var ask []string
	var askArgs []any
	for i, cv := range canon {
		if k, ok := memo[memoKey{t, col, cv}]; ok {
			keys = append(keys, k...)
			continue
		}
		ask = append(ask, cv)
		askArgs = append(askArgs, args[i])
	}
	if len(ask) == 0 {
		return keys, nil
	}
	found, err := c.lookup(ctx, t, col, ask, askArgs)
	if err != nil {
		return nil, err
	}
	for _, cv := range ask {
		memo[memoKey{t, col, cv}] = found[cv]
		keys = append(keys, found[cv]...)
	}
	return keys, nil
}

// lookup runs one candidate query for the canonical values canon (args
// are what SQL compares, in the same order) and returns the confirmed
// keys per canonical value.
func (c *Connector) lookup(ctx context.Context, t *table, col string, canon []string, args []any) (map[string][][]any, error) {
	return c.lookups.group(t, col).do(ctx, canon, args, func(canon []string, args []any) (map[string][][]any, error) {
		return c.lookupNow(ctx, t, col, canon, args)
	})
}

// lookupNow is lookup's query, run at once.
func (c *Connector) lookupNow(ctx context.Context, t *table, col string, canon []string, args []any) (map[string][][]any, error) {
	r := t.rules[col]
	want := map[string]bool{}
	for _, cv := range canon {
		want[cv] = true
	}
	q := &query{d: c.d}
	var cond string
	switch r {
	case MatchPhone:
		conds := make([]string, len(args))
		for i, a := range args {
			expr, pattern := c.d.phoneFilter(c.d.quote(col), a.(string))
			conds[i] = fmt.Sprintf("%s LIKE %s", expr, q.arg(pattern))
		}
		cond = strings.Join(conds, " OR ")
	case MatchCaseInsensitive:
		ph := make([]string, len(args))
		for i, a := range args {
			ph[i] = q.arg(a)
		}
		cond = fmt.Sprintf("%s IN (%s)", c.d.lowerTrim(c.d.quote(col)), strings.Join(ph, ", "))
	default:
		ph := make([]string, len(args))
		for i, a := range args {
			ph[i] = q.arg(a)
		}
		cond = fmt.Sprintf("%s IN (%s)", c.d.quote(col), strings.Join(ph, ", "))
	}
	cols := make([]string, 0, len(t.key)+1)
	for _, k := range t.key {
		cols = append(cols, c.d.quote(k))
	}
	cols = append(cols, c.d.quote(col))
	stmt := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), c.d.quote(t.Name), cond)
	rows, err := c.queryContext(ctx, nil, stmt, q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][][]any{}
	n := 0
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
		cv, ok := canonical(r, c.region, stored)
		if !ok || !want[cv] {
			continue
		}
		if n++; n > maxConfirmedRows {
			return nil, fmt.Errorf("more than %d rows match one identity column; check the data map", maxConfirmedRows)
		}
		out[cv] = append(out[cv], dst[:len(t.key)])
	}
	return out, rows.Err()
}

// keyTerm writes "key IN (...)" for confirmed keys, with row values for a
// composite key.
func (c *Connector) keyTerm(q *query, t *table, keys [][]any) string {
	return fmt.Sprintf("%s IN (%s)", c.d.keyCols(t.key), q.tupleList(keys))
}
