package sqlconn

import (
	"context"
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// maxArgsPerStmt bounds the parameters of one statement that counts
// several tables at once: SQLite allows 32,766 by default.
const maxArgsPerStmt = 30000

// countAll counts the subject's rows of each of tables, or with exists
// only says 1 or 0 for each, stopping at the first row. The tables are
// counted in one statement (a scalar subquery per table) unless their
// conditions together carry too many parameters.
func (c *Connector) countAll(ctx context.Context, tables []*table, m *matcher, s schema, exists bool) (map[*table]int64, error) {
	term := func(q *query, t *table) string { return c.countOf(q, t, m, s, exists) }
	out := map[*table]int64{}
	var groups [][]*table
	var group []*table
	args := 0
	for _, t := range tables {
		q := &query{d: c.d}
		if term(q, t) == "" {
			continue
		}
		if len(group) > 0 && args+len(q.args) > maxArgsPerStmt {
			groups, group, args = append(groups, group), nil, 0
		}
		group = append(group, t)
		args += len(q.args)
	}
	if len(group) > 0 {
		groups = append(groups, group)
	}
	for _, g := range groups {
		q := &query{d: c.d}
		cols := make([]string, len(g))
		for i, t := range g {
			cols[i] = term(q, t)
		}
		dst := make([]int64, len(g))
		ptrs := make([]any, len(g))
		for i := range dst {
			ptrs[i] = &dst[i]
		}
		if err := c.scanOne(ctx, nil, "SELECT "+strings.Join(cols, ", "), q.args, ptrs...); err != nil {
			return nil, err
		}
		for i, t := range g {
			out[t] = dst[i]
		}
	}
	return out, nil
}

// countOf writes the scalar subquery that counts the subject's rows of t,
// or with exists says 1 or 0: over the subject's key set (keySet), which
// is the rows themselves, their keys being unique. "" when nothing can
// match.
func (c *Connector) countOf(q *query, t *table, m *matcher, s schema, exists bool) string {
	keys := c.keySet(q, t, m, s)
	if keys == "" {
		return ""
	}
	if exists {
		return fmt.Sprintf("CASE WHEN EXISTS (%s) THEN 1 ELSE 0 END", keys)
	}
	return fmt.Sprintf("(SELECT COUNT(*) FROM (%s) AS subject_keys)", keys)
}

// Plan counts the subject's rows per table.
func (c *Connector) Plan(ctx context.Context, subj connector.Subject) (lethe.Report, error) {
	v := valuesOf(subj.Identities)
	s, m, err := c.begin(ctx, "plan", v, c.tables)
	if err != nil {
		return lethe.Report{}, err
	}
	counts, err := c.countAll(ctx, c.tables, m, s, false)
	if err != nil {
		return lethe.Report{}, c.failOp(v, "plan", err)
	}
	var rep lethe.Report
	for _, t := range c.tables {
		rep.Items = append(rep.Items, item(t, counts[t]))
		cascaded, err := c.cascadeItems(ctx, t, m, s)
		if err != nil {
			return lethe.Report{}, c.fail(v, "plan", t, err)
		}
		rep.Items = append(rep.Items, cascaded...)
	}
	return rep, nil
}

// Verify fails when a delete or pseudonymize table still has rows that
// match the subject: by its identity values, through parents still
// present, and by the key values the ledger kept of the parent rows this
// request erased, so a child row written after its parent was deleted is
// found. Pseudonymized rows no longer match: their identity and
// reference columns were rewritten (compile insists on it). One statement
// asks whether any row is left; only when one is are they counted, for
// the error.
func (c *Connector) Verify(ctx context.Context, subj connector.Subject) error {
	v := valuesOf(subj.Identities)
	s, m, err := c.begin(ctx, "verify", v, c.tables)
	if err != nil {
		return err
	}
	if err := c.ensureLedger(ctx); err != nil {
		return redact(err, v.all())
	}
	if err := c.loadErased(ctx, []string{subj.RequestID}, []*matcher{m}); err != nil {
		return redact(fmt.Errorf("target %q: %w", c.name, err), v.all())
	}
	var check []*table
	for _, t := range c.tables {
		if t.Action != lethe.ActionRetain {
			check = append(check, t)
		}
	}
	found, err := c.countAll(ctx, check, m, s, true)
	if err != nil {
		return c.failOp(v, "verify", err)
	}
	var remain []*table
	for _, t := range check {
		if found[t] > 0 {
			remain = append(remain, t)
		}
	}
	if len(remain) > 0 {
		n, err := c.countAll(ctx, remain, m, s, false)
		if err != nil {
			return c.failOp(v, "verify", err)
		}
		left := make([]string, len(remain))
		for i, t := range remain {
			left[i] = fmt.Sprintf("%s (%d rows, %s)", t.Name, n[t], t.Action)
		}
		return fmt.Errorf("target %q: subject data remains in %s", c.name, strings.Join(left, ", "))
	}
	// Nothing is left: the key values kept for this check go too. A
	// later re-check still finds children by the subject's identity
	// values.
	if err := c.forgetErased(ctx, subj.RequestID); err != nil {
		return redact(fmt.Errorf("target %q: %w", c.name, err), v.all())
	}
	return nil
}
