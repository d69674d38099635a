package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// maxArgsPerStmt bounds the parameters of one statement that counts
// several tables at once: SQLite allows 32,766 by default.
const maxArgsPerStmt = 30000

// countAll counts the subject's rows of each of tables, or with exists
// only says 1 or 0 for each, stopping at the first row (see countProbes).
func (c *Connector) countAll(ctx context.Context, tables []*table, m *matcher, s schema, exists bool) (map[*table]int64, error) {
	probes := make([]probe, len(tables))
	for i, t := range tables {
		probes[i] = probe{t, m}
	}
	n, err := c.countProbes(ctx, nil, probes, s, exists)
	if err != nil {
		return nil, err
	}
	out := make(map[*table]int64, len(tables))
	for i, t := range tables {
		out[t] = n[i]
	}
	return out, nil
}

// probe is one count of a statement that counts several: the rows of t
// that m matches.
type probe struct {
	t *table
	m *matcher
}

// countProbes counts the rows of each probe, or with exists only says 1
// or 0 for each, stopping at the first row: n[i] is probes[i]'s, 0 when
// nothing can match. The probes are counted in one statement (a scalar
// subquery each) unless their conditions together carry too many
// parameters, so the tables of one subject, or of several subjects each
// matched apart, cost one statement. In tx when it is not nil.
func (c *Connector) countProbes(ctx context.Context, tx *sql.Tx, probes []probe, s schema, exists bool) ([]int64, error) {
	term := func(q *query, p probe) string { return c.countOf(q, p.t, p.m, s, exists) }
	out := make([]int64, len(probes))
	var groups [][]int
	var group []int
	args := 0
	for i, p := range probes {
		q := &query{d: c.d}
		if term(q, p) == "" {
			continue
		}
		if len(group) > 0 && args+len(q.args) > maxArgsPerStmt {
			groups, group, args = append(groups, group), nil, 0
		}
		group = append(group, i)
		args += len(q.args)
	}
	if len(group) > 0 {
		groups = append(groups, group)
	}
	for _, g := range groups {
		q := &query{d: c.d}
		cols := make([]string, len(g))
		for j, i := range g {
			cols[j] = term(q, probes[i])
		}
		dst := make([]int64, len(g))
		ptrs := make([]any, len(g))
		for j := range dst {
			ptrs[j] = &dst[j]
		}
		if err := c.scanOne(ctx, tx, "SELECT "+strings.Join(cols, ", "), q.args, ptrs...); err != nil {
			return nil, err
		}
		for j, i := range g {
			out[i] = dst[j]
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
// the error. It is a VerifyBatch of one subject.
func (c *Connector) Verify(ctx context.Context, subj connector.Subject) error {
	return c.VerifyBatch(ctx, []connector.Subject{subj})[0]
}
