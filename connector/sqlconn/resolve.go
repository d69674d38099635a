package sqlconn

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

var _ connector.SubjectResolver = (*Connector)(nil)

// Resolve returns the identities held in the followed columns of the
// subject's rows; see ResolveSubject.
func (c *Connector) Resolve(ctx context.Context, subj connector.Subject) ([]lethe.Identity, error) {
	r, err := c.ResolveSubject(ctx, subj)
	return r.Identities, err
}

// ResolveSubject follows the subject's values through the map's followed
// columns until nothing new turns up (bounded), never following a value
// that reaches more than follow_limit rows of a root table, and counts the
// root rows the identities reach.
func (c *Connector) ResolveSubject(ctx context.Context, subj connector.Subject) (connector.Resolution, error) {
	given := valuesOf(subj.Identities)
	if err := ctx.Err(); err != nil {
		return connector.Resolution{}, redact(fmt.Errorf("target %q: resolve: %w", c.name, err), given.all())
	}
	s, err := c.loadSchema(ctx)
	if err != nil {
		return connector.Resolution{}, redact(err, given.all())
	}
	r := &resolution{c: c, s: s, known: map[lethe.Identity]bool{}, unfollowed: map[string]bool{}, memo: matchMemo{}}
	all := slices.Clone(subj.Identities)
	var follow []lethe.Identity
	for _, id := range subj.Identities {
		if r.known[id] {
			continue
		}
		r.known[id] = true
		ok, err := r.followable(ctx, id, "")
		if err != nil {
			return connector.Resolution{}, c.failResolve(all, err)
		}
		if ok {
			follow = append(follow, id)
		}
	}
	var found []lethe.Identity
	closed := false
	for round := 0; round < maxResolveRounds; round++ {
		m, err := c.match(ctx, valuesOf(follow), s, r.memo)
		if err != nil {
			return connector.Resolution{}, c.failResolve(all, err)
		}
		added := false
		read, err := c.identities(ctx, m, s)
		if err != nil {
			return connector.Resolution{}, c.failResolve(all, err)
		}
		for _, t := range c.tables {
			for _, fid := range read[t] {
				if r.known[fid.Identity] {
					continue
				}
				r.known[fid.Identity] = true
				all = append(all, fid.Identity)
				ok, err := r.followable(ctx, fid.Identity, t.Name+"."+fid.column)
				if err != nil {
					return connector.Resolution{}, c.failResolve(all, err)
				}
				if ok {
					found = append(found, fid.Identity)
					follow = append(follow, fid.Identity)
					added = true
				}
			}
		}
		if !added {
			closed = true // not cut short by the round limit
			break
		}
	}
	slices.SortFunc(found, func(a, b lethe.Identity) int {
		return strings.Compare(string(a.Type)+"\x00"+a.Value, string(b.Type)+"\x00"+b.Value)
	})
	roots, err := r.roots(ctx, append(slices.Clone(subj.Identities), found...))
	if err != nil {
		return connector.Resolution{}, c.failResolve(all, err)
	}
	res := connector.Resolution{Identities: found, RootRecords: roots, Closed: closed}
	for name := range r.unfollowed {
		res.Unfollowed = append(res.Unfollowed, name)
	}
	slices.Sort(res.Unfollowed)
	return res, nil
}

func (c *Connector) failResolve(ids []lethe.Identity, err error) error {
	err = fmt.Errorf("target %q: resolve: %w", c.name, err)
	if c.d.missing(err) {
		err = connector.Permanent(err)
	}
	return redact(err, valuesOf(ids).all())
}

// resolution is the state of one ResolveSubject call.
type resolution struct {
	c          *Connector
	s          schema
	known      map[lethe.Identity]bool
	unfollowed map[string]bool
	// memo: each value is looked up once per column, however many rounds
	// and reach counts ask about it.
	memo matchMemo
}

// followable reports whether id may be followed: it reaches at most
// follow_limit rows of every root table. A value that reaches more is
// named by where it was found (for a given value, the root column it
// matched).
func (r *resolution) followable(ctx context.Context, id lethe.Identity, foundIn string) (bool, error) {
	for _, root := range r.c.tables {
		if !root.Root {
			continue
		}
		n, err := r.c.reach(ctx, root, values{id.Type: {id.Value}}, r.s, int64(r.c.follow)+1, r.memo)
		if err != nil {
			return false, err
		}
		if n > int64(r.c.follow) {
			name := foundIn
			if name == "" {
				name = root.Name + "." + root.Identities[id.Type]
			}
			r.unfollowed[name] = true
			return false, nil
		}
	}
	return true, nil
}

// roots counts the rows of each root table the identities reach.
func (r *resolution) roots(ctx context.Context, ids []lethe.Identity) (map[string]int, error) {
	out := map[string]int{}
	for _, root := range r.c.tables {
		if !root.Root {
			continue
		}
		n, err := r.c.reach(ctx, root, valuesOf(ids), r.s, 0, r.memo)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out[root.Name] = int(n)
		}
	}
	return out, nil
}

// reach counts the rows of t that values v match, stopping at limit when
// limit > 0. Only t and the tables it references are matched.
func (c *Connector) reach(ctx context.Context, t *table, v values, s schema, limit int64, memo matchMemo) (int64, error) {
	m, err := c.matchTables(ctx, v, s, lineage(t, nil), memo)
	if err != nil {
		return 0, err
	}
	q := &query{d: c.d}
	w := c.where(q, t, m, s)
	if w == "" {
		return 0, nil
	}
	lim := ""
	if limit > 0 {
		lim = fmt.Sprintf(" LIMIT %d", limit)
	}
	var n int64
	err = c.scanOne(ctx, nil, fmt.Sprintf("SELECT COUNT(*) FROM (SELECT 1 AS one FROM %s WHERE %s%s) AS reach", c.d.quote(t.Name), w, lim), q.args, &n)
	return n, err
}

// lineage returns t and every table it references, recursively.
func lineage(t *table, acc []*table) []*table {
	if slices.Contains(acc, t) {
		return acc
	}
	acc = append(acc, t)
	for _, l := range t.parents {
		acc = lineage(l.parent, acc)
	}
	return acc
}

// foundIdentity is an identity read from a followed column.
type foundIdentity struct {
	lethe.Identity
	column string
}

// identities reads the followed columns of the subject's rows of every
// table that has some, each value put in its canonical form under the
// column's rule. The tables' reads are one statement where they fit: a
// UNION ALL of each table's own SELECT DISTINCT ... LIMIT, laid out as
// lookupStmt lays out its arms.
func (c *Connector) identities(ctx context.Context, m *matcher, s schema) (map[*table][]foundIdentity, error) {
	var arms []identityArm
	for _, t := range c.tables {
		if len(t.follow) == 0 {
			continue
		}
		q := &query{d: c.d}
		w := c.where(q, t, m, s)
		if w == "" {
			continue
		}
		arm := identityArm{t: t, nargs: len(q.args)}
		for _, typ := range t.idTypes {
			if col := t.Identities[typ]; t.follow[col] {
				arm.types = append(arm.types, typ)
				arm.cols = append(arm.cols, col)
			}
		}
		arms = append(arms, arm)
	}
	out := map[*table][]foundIdentity{}
	for len(arms) > 0 {
		n, params, width := 0, 0, 0
		for n < len(arms) && n < maxLookupArms {
			a := arms[n]
			if n > 0 && (params+a.nargs > c.params || width+len(a.cols) > maxLookupColumns) {
				break
			}
			params += a.nargs
			width += len(a.cols)
			n++
		}
		if err := c.identitiesStmt(ctx, arms[:n], m, s, out); err != nil {
			names := make([]string, n)
			for i, a := range arms[:n] {
				names[i] = strconv.Quote(a.t.Name)
			}
			return nil, fmt.Errorf("%s: %w", strings.Join(names, ", "), err)
		}
		arms = arms[n:]
	}
	return out, nil
}

// identityArm is one table's part of an identities statement.
type identityArm struct {
	t     *table
	types []lethe.IdentityType
	cols  []string // followed, unquoted
	nargs int      // the arguments of its condition
	at    int      // its first column in the statement's rows
}

// identitiesStmt reads arms in one statement and adds what they find to
// out.
func (c *Connector) identitiesStmt(ctx context.Context, arms []identityArm, m *matcher, s schema, out map[*table][]foundIdentity) error {
	q := &query{d: c.d}
	width := 0
	for i := range arms {
		arms[i].at = width
		width += len(arms[i].cols)
	}
	var stmt string
	if len(arms) == 1 {
		a := arms[0]
		stmt = fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s LIMIT %d",
			c.quoteList(a.cols), c.d.quote(a.t.Name), c.where(q, a.t, m, s), maxResolveRows+1)
	} else {
		selects := make([]string, len(arms))
		for i, a := range arms {
			alias := "lethe_a" + strconv.Itoa(i)
			cols := []string{strconv.Itoa(i)}
			for j, other := range arms {
				for _, col := range other.cols {
					switch {
					case j == i:
						cols = append(cols, alias+"."+c.d.quote(col))
					case i == 0:
						// Typed NULLs: see lookupStmt.
						cols = append(cols, fmt.Sprintf("(SELECT %s FROM %s WHERE 1 = 0)", c.d.quote(col), c.d.quote(other.t.Name)))
					default:
						cols = append(cols, "NULL")
					}
				}
			}
			selects[i] = fmt.Sprintf("SELECT %s FROM (SELECT DISTINCT %s FROM %s WHERE %s LIMIT %d) AS %s",
				strings.Join(cols, ", "), c.quoteList(a.cols), c.d.quote(a.t.Name), c.where(q, a.t, m, s), maxResolveRows+1, alias)
		}
		stmt = strings.Join(selects, " UNION ALL ")
	}
	rows, err := c.queryContext(ctx, nil, stmt, q.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	arm0, dst, ptrs := armRow(width, len(arms) > 1)
	per := make([]int, len(arms))
	for rows.Next() {
		clear(dst)
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		tag := *arm0
		if tag < 0 || tag >= int64(len(arms)) {
			return fmt.Errorf("identity row of arm %d in a statement of %d", tag, len(arms))
		}
		a := arms[tag]
		if per[tag]++; per[tag] > maxResolveRows {
			return fmt.Errorf("%q: more than %d distinct linked identities; check the data map", a.t.Name, maxResolveRows)
		}
		for i, typ := range a.types {
			raw, ok := text(dst[a.at+i])
			if !ok {
				continue
			}
			col := a.cols[i]
			cv, ok := canonical(a.t.rules[col], c.region, raw)
			if !ok {
				continue
			}
			// A value that is not a valid identity (a malformed stored
			// email) cannot be passed on; the row itself is still found
			// through the identity that led here.
			if id, err := lethe.NormalizeIdentity(lethe.Identity{Type: typ, Value: cv}); err == nil {
				out[a.t] = append(out[a.t], foundIdentity{Identity: id, column: col})
			}
		}
	}
	return rows.Err()
}
