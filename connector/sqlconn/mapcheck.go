package sqlconn

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

var _ connector.SchemaChecker = (*Connector)(nil)

// largeTableRows is the size above which a match column without an index
// is worth a warning: below it a scan costs less than the warning's noise.
// A variable so the tests need not write ten thousand rows.
var largeTableRows = 10000

// liveCache holds what CheckSchema read, so Plan can count the declared
// cascades without reading the constraints again.
type liveCache struct {
	mu       sync.Mutex
	ready    bool
	schema   *liveSchema
	def      string
	cascades []cascade
}

// cascade is a change the database makes by itself, through a foreign key
// rule, when lethe deletes (or pseudonymizes) rows of parent, and that the
// data map declared on root.
type cascade struct {
	root   *table
	parent string // live name of the table whose rows change first
	fk     foreignKey
	rule   string // the rule that fires
	update bool   // ON UPDATE (a pseudonymized key) rather than ON DELETE
}

// action is how the cascade changes the child's rows.
func (cs cascade) action() lethe.Action {
	if cs.rule == ruleCascade && !cs.update {
		return lethe.ActionDelete
	}
	return lethe.ActionPseudonymize
}

func (cs cascade) reason() string {
	on := "DELETE"
	if cs.update {
		on = "UPDATE"
	}
	return fmt.Sprintf("ON %s %s from %s (%s)", on, cs.rule, cs.parent, strings.Join(cs.fk.columns, ", "))
}

// CheckSchema checks the data map against the live schema's constraints,
// so that an erasure cannot fail midway for a schema reason, nor change
// rows the map does not account for. Errors: foreign keys that would
// refuse a delete or update lethe makes (a retained or unmapped table
// referencing a deleted parent, a mapped table erased through another
// column than its key), ON DELETE/UPDATE CASCADE, SET NULL and SET DEFAULT
// rules that change tables the map does not declare in cascades, NOT NULL
// columns pseudonymized to null, foreign key columns pseudonymized to a
// value no parent row holds, columns too short for what their strategy
// writes, one fixed value for a unique column. Warnings: unmapped tables linked to mapped
// ones or named like personal data, each with a suggested entry; match
// columns without an index on large tables; declared cascades that never
// happen; a map without a root table that follows identity columns by
// default. Missing tables and columns are Validate's to report.
func (c *Connector) CheckSchema(ctx context.Context) ([]connector.Problem, error) {
	ck, err := c.analyse(ctx)
	if err != nil {
		return nil, err
	}
	if err := ck.pseudonymized(ctx); err != nil {
		return nil, fmt.Errorf("target %q: check: %w", c.name, err)
	}
	ck.unmapped()
	ck.rootless()
	if err := ck.indexes(ctx); err != nil {
		return nil, fmt.Errorf("target %q: check: %w", c.name, err)
	}
	slices.SortStableFunc(ck.problems, func(a, b connector.Problem) int {
		if a.Severity != b.Severity {
			if a.Severity == connector.SeverityError {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Table, b.Table)
	})
	return ck.problems, nil
}

// analyse reads the live schema and works out the foreign key rules the
// map's deletes and updates fire; the result is kept for Plan.
func (c *Connector) analyse(ctx context.Context) (*schemaCheck, error) {
	var extra []string
	for _, t := range c.tables {
		if sch, _, ok := strings.Cut(t.Name, "."); ok {
			extra = append(extra, sch)
		}
	}
	ls, def, err := readLive(ctx, c.d, c.db, extra)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", c.name, err)
	}
	ck := &schemaCheck{c: c, ls: ls, def: def, mapped: map[string]*table{}, live: map[*table]string{}, flagged: map[string]bool{}}
	for _, t := range c.tables {
		if lt := ls.lookup(t.Name, def); lt != nil {
			ck.mapped[lt.name] = t
			ck.live[t] = lt.name
		}
	}
	ck.deletes()
	ck.updates()
	ck.declarations()
	c.live.mu.Lock()
	c.live.ready, c.live.schema, c.live.def, c.live.cascades = true, ls, def, ck.cascades
	c.live.mu.Unlock()
	return ck, nil
}

// schemaCheck is one run of CheckSchema.
type schemaCheck struct {
	c        *Connector
	ls       *liveSchema
	def      string
	mapped   map[string]*table // live name -> mapped table
	live     map[*table]string // mapped table -> live name
	cascades []cascade
	problems []connector.Problem
	flagged  map[string]bool // tables with an error that already suggests an entry
}

func (ck *schemaCheck) add(sev connector.Severity, table, column, suggestion, format string, args ...any) {
	ck.problems = append(ck.problems, connector.Problem{
		Severity: sev, Target: ck.c.name, Table: table, Column: column,
		Message: fmt.Sprintf(format, args...), Suggestion: suggestion,
	})
}

// covered reports whether the map erases the child rows of fk that point
// at the subject's rows of parent before it changes them: the child is
// mapped (not retained) with a reference over one of the key's columns to
// the same parent column, so children-first order handles it there.
func (ck *schemaCheck) covered(fk foreignKey, parent string) bool {
	ct, pt := ck.mapped[fk.table], ck.mapped[parent]
	if ct == nil || pt == nil || ct.Action == lethe.ActionRetain {
		return false
	}
	for _, l := range ct.parents {
		if l.parent != pt {
			continue
		}
		if i := slices.Index(fk.columns, l.column); i >= 0 && fk.refColumns[i] == l.to {
			return true
		}
	}
	return false
}

// declares reports whether root lists table in its cascades.
func (ck *schemaCheck) declares(root *table, table string) bool {
	for _, name := range root.Cascades {
		if lt := ck.ls.lookup(name, ck.def); lt != nil && lt.name == table {
			return true
		}
	}
	return false
}

func cols(fk foreignKey) string { return strings.Join(fk.columns, ", ") }

// deletes follows every table the map deletes from, and every table a
// declared ON DELETE CASCADE deletes from in turn, through the foreign
// keys that reference it.
func (ck *schemaCheck) deletes() {
	type gone struct {
		name string
		root *table
	}
	var queue []gone
	seen := map[string]bool{}
	for _, t := range ck.c.tables {
		if name, ok := ck.live[t]; ok && t.Action == lethe.ActionDelete {
			queue = append(queue, gone{name, t})
			seen[name] = true
		}
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, fk := range ck.ls.into(cur.name) {
			if ck.covered(fk, cur.name) {
				continue
			}
			ct := ck.mapped[fk.table]
			switch {
			case blocks(fk.onDelete):
				ck.blocked(fk, cur.name, "DELETE", fk.onDelete)
			case ct != nil && ct.Action == lethe.ActionRetain && fk.onDelete == ruleCascade:
				ck.add(connector.SeverityError, fk.table, cols(fk), "",
					"retained, but its foreign key to %q is ON DELETE CASCADE: erasing the subject's %s rows would delete these rows too; make the key ON DELETE SET NULL (declared in cascades) or stop retaining the table",
					cur.name, cur.name)
			case fk.onDelete == ruleSetNull && ck.notNull(fk):
				ck.add(connector.SeverityError, fk.table, cols(fk), "",
					"ON DELETE SET NULL on a NOT NULL column: deleting the subject's %s rows would fail while rows of this table point at them", cur.name)
			case ck.declares(cur.root, fk.table):
				ck.cascades = append(ck.cascades, cascade{root: cur.root, parent: cur.name, fk: fk, rule: fk.onDelete})
				if fk.onDelete == ruleCascade && !seen[fk.table] {
					seen[fk.table] = true
					queue = append(queue, gone{fk.table, cur.root})
				}
			default:
				ck.undeclared(fk, cur.name, cur.root, "DELETE", fk.onDelete)
			}
		}
	}
}

// updates checks the foreign keys that reference columns the map
// pseudonymizes: rewriting a referenced key fires their ON UPDATE rule.
func (ck *schemaCheck) updates() {
	for _, t := range ck.c.tables {
		name, ok := ck.live[t]
		if !ok || t.Action != lethe.ActionPseudonymize {
			continue
		}
		for _, fk := range ck.ls.into(name) {
			if !slices.ContainsFunc(fk.refColumns, func(col string) bool { return hasKey(t.Columns, col) }) || ck.covered(fk, name) {
				continue
			}
			switch {
			case blocks(fk.onUpdate):
				ck.blocked(fk, name, "UPDATE", fk.onUpdate)
			case fk.onUpdate == ruleSetNull && ck.notNull(fk):
				ck.add(connector.SeverityError, fk.table, cols(fk), "",
					"ON UPDATE SET NULL on a NOT NULL column: pseudonymizing the subject's %s rows would fail while rows of this table point at them", name)
			case ck.declares(t, fk.table):
				ck.cascades = append(ck.cascades, cascade{root: t, parent: name, fk: fk, rule: fk.onUpdate, update: true})
			default:
				ck.undeclared(fk, name, t, "UPDATE", fk.onUpdate)
			}
		}
	}
}

// blocked reports a foreign key that would refuse lethe's change of parent.
func (ck *schemaCheck) blocked(fk foreignKey, parent, on, rule string) {
	ct := ck.mapped[fk.table]
	verb := map[string]string{"DELETE": "deleting", "UPDATE": "pseudonymizing"}[on]
	switch {
	case fk.table == parent:
		ck.add(connector.SeverityError, fk.table, cols(fk), "",
			"references its own table ON %s %s: %s the subject's row would be refused while another row points at it; make the key ON %s SET NULL and declare it (cascades: [%s])",
			on, rule, verb, on, fk.table)
	case ct == nil:
		ck.flagged[fk.table] = true
		ck.add(connector.SeverityError, fk.table, cols(fk), ck.entryFor(fk.table, []foreignKey{fk}),
			"is not in the data map but references %q ON %s %s: %s the subject's %s rows would be refused while rows of this table point at them, after earlier tables were already erased; map it",
			parent, on, rule, verb, parent)
	case ct.Action == lethe.ActionRetain:
		ck.add(connector.SeverityError, fk.table, cols(fk), "",
			"is retained but references %q ON %s %s: %s the subject's %s rows could never finish while the retained rows point at them; pseudonymize this table instead (rewriting %s), or make the key ON %s SET NULL and declare it (cascades: [%s] on %q)",
			parent, on, rule, verb, parent, cols(fk), on, fk.table, ck.mappedName(parent))
	default:
		ck.add(connector.SeverityError, fk.table, cols(fk), fmt.Sprintf("references: {column: %s, table: %s, to: %s}", fk.columns[0], ck.mappedName(parent), fk.refColumns[0]),
			"is in the data map but not through its foreign key to %q (ON %s %s): rows linked only by this key would refuse the %s of their parent; add the reference so they are erased first",
			parent, on, rule, strings.ToLower(on))
	}
}

// undeclared reports a rule that would change a table the map does not
// account for.
func (ck *schemaCheck) undeclared(fk foreignKey, parent string, root *table, on, rule string) {
	what := "set " + cols(fk) + " to NULL in"
	switch rule {
	case ruleCascade:
		what = "delete"
		if on == "UPDATE" {
			what = "rewrite " + cols(fk) + " in"
		}
	case ruleSetDefault:
		what = "set " + cols(fk) + " to its default in"
	}
	sugg := ""
	if ck.mapped[fk.table] == nil {
		ck.flagged[fk.table] = true
		sugg = ck.entryFor(fk.table, []foreignKey{fk})
	}
	ck.add(connector.SeverityError, fk.table, cols(fk), sugg,
		"ON %s %s from %q would %s the rows of this table that point at the subject's %s rows, which the data map does not account for; declare it (cascades: [%s] on table %q) so it is counted, or map this table",
		on, rule, parent, what, parent, fk.table, root.Name)
}

func (ck *schemaCheck) notNull(fk foreignKey) bool {
	lt := ck.ls.tables[fk.table]
	if lt == nil {
		return false
	}
	return slices.ContainsFunc(fk.columns, func(col string) bool { return lt.columns[col].notNull })
}

// mappedName is the data map's name for a live table.
func (ck *schemaCheck) mappedName(live string) string {
	if t := ck.mapped[live]; t != nil {
		return t.Name
	}
	return live
}

// declarations checks each table's cascades against what was found.
func (ck *schemaCheck) declarations() {
	for _, t := range ck.c.tables {
		for _, name := range t.Cascades {
			if !validTableName(name) {
				ck.add(connector.SeverityError, t.Name, "", "", "cascades: %q is not a plain table name", name)
				continue
			}
			lt := ck.ls.lookup(name, ck.def)
			if lt == nil {
				ck.add(connector.SeverityError, t.Name, "", "", "cascades: table %q does not exist", name)
				continue
			}
			if !slices.ContainsFunc(ck.cascades, func(cs cascade) bool { return cs.root == t && cs.fk.table == lt.name }) {
				ck.add(connector.SeverityWarning, t.Name, "", "",
					"cascades lists %q, but no ON DELETE or ON UPDATE rule changes it when lethe erases this table's rows", name)
			}
		}
	}
}

// rootless warns about a map that follows identity columns only because
// no table is root: true. Without a root, follow: unset follows every
// identity column, so a value two people share (a phone, an address)
// leads Resolve from one to the other and both are erased; and with no
// root rows to count, no request can be held as ambiguous. A map with a
// single identity column has nothing for following to find.
func (ck *schemaCheck) rootless() {
	var defaulted []string
	identities := 0
	for _, t := range ck.c.tables {
		if t.Root {
			return
		}
		identities += len(t.rules)
		if t.Follow != nil {
			continue
		}
		for col := range t.follow {
			defaulted = append(defaulted, t.Name+"."+col)
		}
	}
	if len(defaulted) == 0 || identities < 2 {
		return
	}
	slices.Sort(defaulted)
	ck.add(connector.SeverityWarning, "", "", "",
		"no table is root: true, so every identity column of a table without follow: is followed (%s): a value two people share (a phone, an address) links their records and both people are erased, and no request can be held as ambiguous (there are no accounts to count); mark the table holding the subject's accounts root: true (or set follow: on each table to the columns that identify one person)",
		strings.Join(defaulted, ", "))
}

// pseudonymized checks the columns pseudonymize rewrites: NOT NULL
// columns cannot take null, and a foreign key column can only take null
// or a value its parent holds.
func (ck *schemaCheck) pseudonymized(ctx context.Context) error {
	for _, t := range ck.c.tables {
		name, ok := ck.live[t]
		if !ok || t.Action != lethe.ActionPseudonymize {
			continue
		}
		lt := ck.ls.tables[name]
		for _, col := range t.columns {
			lc, ok := lt.columns[col]
			if !ok {
				continue
			}
			st := t.Columns[col]
			if lc.notNull && st.kind() == StrategyNull {
				ck.add(connector.SeverityError, t.Name, col, "",
					"is NOT NULL but pseudonymize sets it to null: the UPDATE would fail after earlier tables were already erased; use {fixed: ...}, hash or random, or allow NULL")
			}
			if st.kind() == StrategyFixed && lt.unique[col] {
				ck.add(connector.SeverityError, t.Name, col, "",
					"has a unique index, but pseudonymize writes the same fixed value into every row: the second row would be refused; use hash or random")
			}
			if n := writtenLen(st); lc.maxLen > 0 && n > lc.maxLen {
				ck.add(connector.SeverityError, t.Name, col, "",
					"holds at most %d characters but strategy %s writes %d: the UPDATE would fail (or cut the value) after earlier tables were already erased",
					lc.maxLen, st.kind(), n)
			}
		}
		for _, fk := range ck.ls.outOf(name) {
			for i, col := range fk.columns {
				st, ok := t.Columns[col]
				if !ok {
					continue
				}
				switch st.kind() {
				case StrategyNull:
				case StrategyFixed:
					if len(fk.columns) != 1 {
						ck.add(connector.SeverityError, t.Name, col, "",
							"is part of a foreign key to %q; a fixed value there cannot be checked; use null", fk.refTable)
						continue
					}
					var n int
					q := &query{d: ck.c.d}
					stmt := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s = %s", ck.c.d.quote(fk.refTable), ck.c.d.quote(fk.refColumns[i]), q.arg(st.Value))
					if err := ck.c.db.QueryRowContext(ctx, stmt, q.args...).Scan(&n); err != nil {
						return fmt.Errorf("table %q: read %q: %w", t.Name, fk.refTable, err)
					}
					if n == 0 {
						ck.add(connector.SeverityError, t.Name, col, "",
							"references %q.%q, but no row there holds the fixed value pseudonymize writes: the foreign key would refuse the UPDATE", fk.refTable, fk.refColumns[i])
					}
				default:
					ck.add(connector.SeverityError, t.Name, col, "",
						"references %q.%q, but strategy %s writes values no row there holds: the foreign key would refuse the UPDATE; use null", fk.refTable, fk.refColumns[i], st.kind())
				}
			}
		}
	}
	return nil
}

// writtenLen is how many characters strategy st writes into a column.
func writtenLen(st Strategy) int {
	switch st.kind() {
	case StrategyHash:
		return 64 // hex SHA-256
	case StrategyRedactEmail:
		return len("erased+0123456789abcdef@invalid")
	case StrategyRandom:
		return 32
	case StrategyFixed:
		return utf8.RuneCountInString(st.Value)
	}
	return 0
}

// indexes warns about match columns without an index on large tables:
// every plan, erase and verify would scan them.
func (ck *schemaCheck) indexes(ctx context.Context) error {
	type col struct{ table, column string }
	type ruled struct {
		col
		t *table
	}
	var need []col
	var rules []ruled
	for _, t := range ck.c.tables {
		name, ok := ck.live[t]
		if !ok {
			continue
		}
		for _, typ := range t.idTypes {
			c := t.Identities[typ]
			switch t.rules[c] {
			case MatchCaseInsensitive, MatchPhone:
				// Compared through an expression: a plain index on the
				// column does not serve it (ruleIndexes says what does).
				rules = append(rules, ruled{col{name, c}, t})
			default:
				need = append(need, col{name, c})
			}
		}
		for _, l := range t.parents {
			need = append(need, col{name, l.column})
			if pn, ok := ck.live[l.parent]; ok {
				need = append(need, col{pn, l.to})
			}
		}
	}
	large := map[string]bool{}
	isLarge := func(table string) (bool, error) {
		big, ok := large[table]
		if !ok {
			var err error
			if big, err = atLeast(ctx, ck.c.d, ck.c.db, table, largeTableRows); err != nil {
				return false, fmt.Errorf("count rows of %q: %w", table, err)
			}
			large[table] = big
		}
		return big, nil
	}
	for _, r := range rules {
		if _, ok := ck.ls.tables[r.table].columns[r.column]; !ok {
			continue // Validate reports it
		}
		if err := ck.ruleIndex(ctx, r.t, r.table, r.column, isLarge); err != nil {
			return err
		}
	}
	done := map[col]bool{}
	for _, n := range need {
		lt := ck.ls.tables[n.table]
		if done[n] || lt.indexed[n.column] {
			continue
		}
		if _, ok := lt.columns[n.column]; !ok {
			continue // Validate reports it
		}
		done[n] = true
		big, err := isLarge(n.table)
		if err != nil {
			return err
		}
		if big {
			ck.add(connector.SeverityWarning, ck.mappedName(n.table), n.column, "",
				"matches the subject's rows but no index leads with it, and the table has more than %d rows: every plan, erase and verify scans it; CREATE INDEX ON %s (%s)",
				largeTableRows, n.table, n.column)
		}
	}
	return nil
}

// ruleIndex warns when the match rule of identity column col of t (live
// table name live) makes every candidate query scan a large table, and
// says what would serve it. The case-insensitive rule compares
// lower(trim(col)): an index on exactly that expression serves it on
// PostgreSQL and SQLite (MySQL 8.0.13 and later too; MariaDB has no
// expression indexes). The phone rule looks for the number's digits
// wherever they stand in the value, which no index can serve: a column
// that holds E.164 numbers only is better declared match: exact.
func (ck *schemaCheck) ruleIndex(ctx context.Context, t *table, live, col string, isLarge func(string) (bool, error)) error {
	big, err := isLarge(live)
	if err != nil || !big {
		return err
	}
	name := ck.mappedName(live)
	switch t.rules[col] {
	case MatchCaseInsensitive:
		if ck.c.d.name != "mysql" {
			ok, err := ck.lowerTrimIndexed(ctx, live, col)
			if err != nil {
				return fmt.Errorf("read indexes of %q: %w", live, err)
			}
			if ok {
				return nil
			}
			ck.add(connector.SeverityWarning, name, col, "",
				"is matched case-insensitively as lower(trim(%s)), which no index serves, and the table has more than %d rows: every resolve, plan, erase and verify scans it; CREATE INDEX %s_%s_ci ON %s (lower(trim(%s)))",
				col, largeTableRows, strings.ReplaceAll(live, ".", "_"), col, live, col)
			return nil
		}
		ck.add(connector.SeverityWarning, name, col, fmt.Sprintf("match: {%s: exact}", col),
			"is matched case-insensitively as lower(trim(%s)), and the table has more than %d rows: every resolve, plan, erase and verify scans it. MySQL 8.0.13 and later use CREATE INDEX %s_%s_ci ON %s ((lower(trim(%s)))); MariaDB has no expression indexes: if the column holds trimmed lower-case values only, declare match exact (its collation compares case-insensitively; lethe still confirms every value) and index the column",
			col, largeTableRows, strings.ReplaceAll(live, ".", "_"), col, live, col)
	case MatchPhone:
		ck.add(connector.SeverityWarning, name, col, fmt.Sprintf("match: {%s: exact}", col),
			"is matched by the phone rule, which looks for the number's digits wherever they stand in the value (no index can serve that), and the table has more than %d rows: every resolve, plan, erase and verify scans it. If the column holds E.164 numbers only (+4915112345678), declare match exact and index the column",
			largeTableRows)
	}
	return nil
}

// lowerTrimIndexed reports whether an index of table is on the expression
// lower(trim(col)), as PostgreSQL or SQLite hold its definition.
func (ck *schemaCheck) lowerTrimIndexed(ctx context.Context, table, col string) (bool, error) {
	sch, name, qualified := strings.Cut(table, ".")
	if !qualified {
		sch, name = "", table
	}
	var q string
	var args []any
	switch ck.c.d.name {
	case "postgres":
		q = `SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = COALESCE(NULLIF($1, ''), current_schema()) AND c.relname = $2 AND i.indexprs IS NOT NULL`
		args = []any{sch, name}
	case "sqlite":
		if sch == "" {
			sch = "main"
		}
		q = `SELECT sql FROM ` + ck.c.d.quote(sch) + `.sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`
		args = []any{name}
	default:
		return false, nil
	}
	rows, err := ck.c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	want := "lower(trim(" + strings.ToLower(col) + "))"
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			return false, err
		}
		if strings.Contains(normalizeIndexDef(def), want) {
			return true, nil
		}
	}
	return false, rows.Err()
}

// normalizeIndexDef reduces an index definition to lower case without
// quotes, spaces or PostgreSQL's rendering of trim ("TRIM(BOTH FROM x)")
// and of casts to text, so lower(trim(col)) reads the same from both.
func normalizeIndexDef(def string) string {
	def = strings.ToLower(def)
	for _, cut := range []string{`"`, "`", " ", "\t", "\n", "::text", "bothfrom"} {
		def = strings.ReplaceAll(def, cut, "")
	}
	return def
}

// cascades returns the live schema's cascades declared in the map.
func (c *Connector) cascades(ctx context.Context) ([]cascade, error) {
	c.live.mu.Lock()
	ready, all := c.live.ready, c.live.cascades
	c.live.mu.Unlock()
	if ready {
		return all, nil
	}
	ck, err := c.analyse(ctx)
	if err != nil {
		return nil, err
	}
	return ck.cascades, nil
}

// cascadeItems counts, for Plan, the rows that the cascades declared on t
// would change, one line per foreign key.
func (c *Connector) cascadeItems(ctx context.Context, t *table, m *matcher, s schema) ([]lethe.ReportItem, error) {
	if len(t.Cascades) == 0 {
		return nil, nil
	}
	all, err := c.cascades(ctx)
	if err != nil {
		return nil, err
	}
	subject := func(q *query, pt *table) string { return c.where(q, pt, m, s) }
	var items []lethe.ReportItem
	for _, cs := range all {
		if cs.root != t {
			continue
		}
		q := &query{d: c.d}
		w := c.cascadeWhere(q, cs, all, subject, 0)
		if w == "" {
			items = append(items, lethe.ReportItem{Object: cs.fk.table, Action: cs.action(), Reason: cs.reason()})
			continue
		}
		var n int64
		stmt := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s", c.d.quote(cs.fk.table), w)
		if err := c.db.QueryRowContext(ctx, stmt, q.args...).Scan(&n); err != nil {
			return nil, fmt.Errorf("count cascade into %q: %w", cs.fk.table, err)
		}
		items = append(items, lethe.ReportItem{Object: cs.fk.table, Action: cs.action(), Rows: n, Reason: cs.reason()})
	}
	return items, nil
}

// maxCascadeDepth bounds how many hops of CASCADE a count follows.
const maxCascadeDepth = 8

// cascadeWhere writes the condition selecting the child rows cs changes:
// their key points at a subject's row of the parent, which is either a
// mapped table or one a cascade deletes in turn. rows writes the condition
// selecting the rows of a mapped parent that change (the subject's for a
// plan, one batch's keys for the ledger). "" when nothing can match.
func (c *Connector) cascadeWhere(q *query, cs cascade, all []cascade, rows func(q *query, pt *table) string, depth int) string {
	var sub string
	if pt := c.mappedLive(cs.parent); pt != nil {
		sub = rows(q, pt)
	} else if depth < maxCascadeDepth {
		var terms []string
		for _, up := range all {
			if up.fk.table == cs.parent && up.action() == lethe.ActionDelete {
				if w := c.cascadeWhere(q, up, all, rows, depth+1); w != "" {
					terms = append(terms, w)
				}
			}
		}
		if len(terms) > 0 {
			sub = "(" + strings.Join(terms, " OR ") + ")"
		}
	}
	if sub == "" {
		return ""
	}
	quoteAll := func(names []string) string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = c.d.quote(n)
		}
		return strings.Join(out, ", ")
	}
	return fmt.Sprintf("(%s) IN (SELECT %s FROM %s WHERE %s)", quoteAll(cs.fk.columns), quoteAll(cs.fk.refColumns), c.d.quote(cs.parent), sub)
}

// mappedLive finds the mapped table of a live name.
func (c *Connector) mappedLive(live string) *table {
	c.live.mu.Lock()
	ls, def := c.live.schema, c.live.def
	c.live.mu.Unlock()
	for _, t := range c.tables {
		if lt := ls.lookup(t.Name, def); lt != nil && lt.name == live {
			return t
		}
	}
	return nil
}
