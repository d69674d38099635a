package sqlconn

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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

// match builds the matcher for values v: the candidate rows of every
// confirmed column holding a type the subject has, for the values memo
// does not know yet, found in one statement (see lookup). memo may be nil.
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
	type column struct {
		t     *table
		col   string
		canon []string
	}
	var cols []column
	var ask []lookupArg
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
			canon, args := c.wanted(t, col, v[typ], s)
			cols = append(cols, column{t, col, canon})
			for i, cv := range canon {
				if _, ok := memo[memoKey{t, col, cv}]; !ok {
					ask = append(ask, lookupArg{t: t, col: col, canon: cv, arg: args[i]})
				}
			}
		}
	}
	if len(ask) > 0 {
		found, err := c.lookup(ctx, ask)
		if err != nil {
			return nil, err
		}
		for _, a := range ask {
			memo[a.memoKey()] = found[a.key()]
		}
	}
	for _, cl := range cols {
		var keys [][]any
		for _, cv := range cl.canon {
			keys = append(keys, memo[memoKey{cl.t, cl.col, cv}]...)
		}
		if len(keys) > 0 {
			if m.keys[cl.t] == nil {
				m.keys[cl.t] = map[string][][]any{}
			}
			m.keys[cl.t][cl.col] = keys
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

// lookupArg is one value a candidate query asks one column about: its
// canonical form, and the argument SQL compares it by.
type lookupArg struct {
	t     *table
	col   string
	canon string
	arg   any
}

func (a lookupArg) memoKey() memoKey { return memoKey{a.t, a.col, a.canon} }

// key names the value among those of every column (table names are
// unique in a map, and neither names nor canonical values hold a NUL).
func (a lookupArg) key() string { return a.t.Name + "\x00" + a.col + "\x00" + a.canon }

// lookup returns the confirmed keys of the rows each value in ask matches,
// by lookupArg.key. Every column's candidates are read in one statement,
// shared with the operations asking at the same time (coalesce.go).
func (c *Connector) lookup(ctx context.Context, ask []lookupArg) (map[string][][]any, error) {
	keys := make([]string, len(ask))
	args := make([]any, len(ask))
	for i, a := range ask {
		keys[i], args[i] = a.key(), a
	}
	return c.lookups.do(ctx, keys, args, func(_ []string, args []any) (map[string][][]any, error) {
		ask := make([]lookupArg, len(args))
		for i, a := range args {
			ask[i] = a.(lookupArg)
		}
		return c.lookupNow(ctx, ask)
	})
}

// lookupArm is one column's part of a candidate statement.
type lookupArm struct {
	t    *table
	col  string
	args []lookupArg
	at   int // its first column in the statement's rows
}

// Bounds of one candidate statement. SQLite allows 500 SELECTs in a
// compound one and 2,000 result columns, PostgreSQL 1,664 result
// columns; the parameters are the dialect's (dialect.maxParams).
const (
	maxLookupArms    = 64
	maxLookupColumns = 512
)

// lookupNow runs the candidate queries of ask at once: one SELECT per
// column, each with the predicate (and so the index) a query of that
// column alone would have, joined by UNION ALL into as few statements as
// the dialect's limits allow. The arms' columns differ in type, so each
// arm has its own result columns, NULL in the other arms' rows, and a row
// tells its arm by the first column.
func (c *Connector) lookupNow(ctx context.Context, ask []lookupArg) (map[string][][]any, error) {
	var arms []*lookupArm
	for _, a := range ask {
		i := slices.IndexFunc(arms, func(arm *lookupArm) bool { return arm.t == a.t && arm.col == a.col })
		if i < 0 {
			i = len(arms)
			arms = append(arms, &lookupArm{t: a.t, col: a.col})
		}
		arms[i].args = append(arms[i].args, a)
	}
	out := map[string][][]any{}
	per := map[memoKeyCol]int{} // rows confirmed, per column
	for len(arms) > 0 {
		// Fill one statement: whole arms while they fit, then the part of
		// the next that does.
		var stmt []*lookupArm
		params, width := 0, 0
		for len(arms) > 0 && len(stmt) < maxLookupArms {
			arm := arms[0]
			w := len(arm.t.key) + 1
			room := c.params - params
			if len(stmt) > 0 && (width+w > maxLookupColumns || room <= 0) {
				break
			}
			if padded(len(arm.args)) > room {
				n := 1 // a power of two, as padded as it is
				for n*2 <= room {
					n *= 2
				}
				part := *arm
				part.args = arm.args[:n]
				arm.args = arm.args[n:]
				stmt = append(stmt, &part)
				break
			}
			stmt = append(stmt, arm)
			arms = arms[1:]
			params += padded(len(arm.args))
			width += w
		}
		if err := c.lookupStmt(ctx, stmt, out, per); err != nil {
			return nil, fmt.Errorf("match %s: %w", armNames(stmt), err)
		}
	}
	return out, nil
}

// armNames names the columns of a candidate statement, for its errors.
func armNames(arms []*lookupArm) string {
	names := make([]string, len(arms))
	for i, a := range arms {
		names[i] = fmt.Sprintf("%q.%q", a.t.Name, a.col)
	}
	return strings.Join(names, ", ")
}

// lookupStmt runs one candidate statement and adds the keys it confirms
// to out. per counts each column's confirmed rows across statements; the
// parts of a column split between statements share one count.
func (c *Connector) lookupStmt(ctx context.Context, arms []*lookupArm, out map[string][][]any, per map[memoKeyCol]int) error {
	q := &query{d: c.d}
	width := 0
	for _, arm := range arms {
		arm.at = width
		width += len(arm.t.key) + 1
	}
	selects := make([]string, len(arms))
	for i, arm := range arms {
		var cols []string
		if len(arms) > 1 {
			cols = append(cols, strconv.Itoa(i))
		}
		for j, other := range arms {
			names := append(slices.Clone(other.t.key), other.col)
			for _, name := range names {
				switch {
				case j == i:
					cols = append(cols, c.d.quote(name))
				case i == 0:
					// PostgreSQL types a UNION's columns pair by pair,
					// and two bare NULLs would make a column text before
					// the arm holding, say, an integer key is met: the
					// first arm's NULLs carry their column's type.
					cols = append(cols, fmt.Sprintf("(SELECT %s FROM %s WHERE 1 = 0)", c.d.quote(name), c.d.quote(other.t.Name)))
				default:
					cols = append(cols, "NULL")
				}
			}
		}
		selects[i] = fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "), c.d.quote(arm.t.Name), c.lookupCond(q, arm))
	}
	if len(q.args) > c.params {
		return fmt.Errorf("a candidate statement of %d parameters, over the limit of %d", len(q.args), c.params)
	}
	rows, err := c.queryContext(ctx, nil, strings.Join(selects, " UNION ALL "), q.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	want := make([]map[string]bool, len(arms))
	for i, arm := range arms {
		want[i] = map[string]bool{}
		for _, a := range arm.args {
			want[i][a.canon] = true
		}
	}
	arm0, dst, ptrs := armRow(width, len(arms) > 1)
	for rows.Next() {
		clear(dst)
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		tag := *arm0
		if tag < 0 || tag >= int64(len(arms)) {
			return fmt.Errorf("candidate row of arm %d in a statement of %d", tag, len(arms))
		}
		arm := arms[tag]
		nk := len(arm.t.key)
		stored, ok := text(dst[arm.at+nk])
		if !ok {
			continue
		}
		r := arm.t.rules[arm.col]
		cv, ok := canonical(r, c.region, stored)
		if !ok || !want[tag][cv] {
			continue
		}
		if per[memoKeyCol{arm.t, arm.col}]++; per[memoKeyCol{arm.t, arm.col}] > c.confirm {
			return fmt.Errorf("more than %d rows match identity column %q.%q; check the data map", c.confirm, arm.t.Name, arm.col)
		}
		k := lookupArg{t: arm.t, col: arm.col, canon: cv}.key()
		out[k] = append(out[k], slices.Clone(dst[arm.at:arm.at+nk]))
	}
	return rows.Err()
}

// lookupCond writes the SQL filter of an arm, which never misses a row
// whose value matches under the column's rule; rows are confirmed in Go.
// Its values are one array on PostgreSQL (see in), phone patterns and the
// other dialects' lists padded to a power of two by repeating the last:
// prepared statements are cached by text.
func (c *Connector) lookupCond(q *query, arm *lookupArm) string {
	col := c.d.quote(arm.col)
	if arm.t.rules[arm.col] == MatchPhone {
		// LIKEs ORed, never LIKE ANY(array): a trigram (GIN) index
		// serves each LIKE, but not an array of patterns.
		conds := make([]string, padded(len(arm.args)))
		for i := range conds {
			expr, pattern := c.d.phoneFilter(col, arm.args[min(i, len(arm.args)-1)].arg.(string))
			conds[i] = fmt.Sprintf("%s LIKE %s", expr, q.arg(pattern))
		}
		return strings.Join(conds, " OR ")
	}
	vals := make([]any, len(arm.args))
	for i, a := range arm.args {
		vals[i] = a.arg
	}
	if arm.t.rules[arm.col] == MatchCaseInsensitive {
		// lower(trim(col)) is text whatever the column's type: an array
		// of text always encodes.
		return q.in(c.d.lowerTrim(col), vals, true)
	}
	// PostgreSQL looks up no other rule in Go (confirmedInGo): this list
	// is MySQL's.
	return q.in(col, vals, false)
}

// padded is n rounded up to a power of two.
func padded(n int) int {
	p := 1
	for p < n {
		p *= 2
	}
	return p
}

// keyTerm writes "key IN (...)" for confirmed keys, with row values for a
// composite key.
func (c *Connector) keyTerm(q *query, t *table, keys [][]any, s schema) string {
	if len(t.key) == 1 {
		flat := make([]any, len(keys))
		for i, k := range keys {
			flat[i] = k[0]
		}
		return q.in(c.d.quote(t.key[0]), flat, s.array(t.Name, t.key[0]))
	}
	return fmt.Sprintf("%s IN (%s)", c.d.keyCols(t.key), q.tupleList(keys))
}

// armRow is where a row of a UNION ALL of arms is scanned: with tagged
// (several arms), the arm's number first, then width values.
func armRow(width int, tagged bool) (tag *int64, dst, ptrs []any) {
	tag = new(int64)
	dst = make([]any, width)
	ptrs = make([]any, 0, width+1)
	if tagged {
		ptrs = append(ptrs, tag)
	}
	for i := range dst {
		ptrs = append(ptrs, &dst[i])
	}
	return tag, dst, ptrs
}

// matchEach matches several subjects' values (vs, of the requests ids)
// for operation op: one candidate query per column for all of them (all:
// every subject's values), each subject's matcher then read from the
// memo, with the keys the ledger kept for its request; and the union of
// the matchers, which a statement acting for all of them selects by.
func (c *Connector) matchEach(ctx context.Context, op string, s schema, all values, vs []values, ids []string) ([]*matcher, *matcher, error) {
	memo := matchMemo{}
	if _, err := c.matchTables(ctx, all, s, c.tables, memo); err != nil {
		return nil, nil, c.failOp(all, op, err)
	}
	ms := make([]*matcher, len(vs))
	for i, v := range vs {
		var err error
		if ms[i], err = c.matchTables(ctx, v, s, c.tables, memo); err != nil {
			return nil, nil, c.failOp(all, op, err)
		}
	}
	if err := c.loadErased(ctx, ids, ms); err != nil {
		return nil, nil, redact(fmt.Errorf("target %q: %w", c.name, err), all.all())
	}
	return ms, unionOf(ms), nil
}

// unionOf returns a matcher of the rows any of ms matches. Every term of
// where is a list of values or keys (the parents' terms included, through
// which children are found), so the lists' union selects the union of the
// rows: one statement acts for several subjects. One matcher is itself.
func unionOf(ms []*matcher) *matcher {
	if len(ms) == 1 {
		return ms[0]
	}
	u := &matcher{v: values{}, keys: map[*table]map[string][][]any{}, confirmed: map[*table]map[string]bool{},
		erased: map[*table]map[string][]string{}}
	seen := map[string]bool{}
	add := func(list []string, kind string, vs []string) []string {
		for _, v := range vs {
			if k := kind + "\x00" + v; !seen[k] {
				seen[k] = true
				list = append(list, v)
			}
		}
		return list
	}
	for _, m := range ms {
		for typ, vs := range m.v {
			u.v[typ] = add(u.v[typ], string(typ), vs)
		}
		for t, cols := range m.confirmed {
			if u.confirmed[t] == nil {
				u.confirmed[t] = map[string]bool{}
			}
			for col := range cols {
				u.confirmed[t][col] = true
			}
		}
		// Keys two subjects share are listed once by terms.
		for t, cols := range m.keys {
			if u.keys[t] == nil {
				u.keys[t] = map[string][][]any{}
			}
			for col, ks := range cols {
				u.keys[t][col] = append(u.keys[t][col], ks...)
			}
		}
		for t, cols := range m.erased {
			if u.erased[t] == nil {
				u.erased[t] = map[string][]string{}
			}
			for col, vs := range cols {
				u.erased[t][col] = add(u.erased[t][col], t.Name+"\x00"+col, vs)
			}
		}
	}
	return u
}
