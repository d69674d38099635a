package sqlconn

import (
	"context"
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

var _ connector.BatchVerifier = (*Connector)(nil)

// VerifyBatch implements connector.BatchVerifier: the statements of one
// Verify serve every subject. One candidate step matches them all, one
// read of the ledger loads every request's kept keys, and one statement
// asks whether any subject's row is left in any table, over the union of
// their matches; when none is (the common case), one statement forgets
// every request's kept keys. Only when a row is left are the subjects'
// rows of the tables that hold one counted, each subject matched apart,
// in one statement, so that each answer names exactly that subject's rows.
func (c *Connector) VerifyBatch(ctx context.Context, subjects []connector.Subject) []error {
	out := make([]error, len(subjects))
	if err := c.distinctRequests("verify batch", subjects); err != nil {
		for i := range out {
			out[i] = err
		}
		return out
	}
	err := c.verify(ctx, subjects, out)
	switch {
	case err == nil:
	case len(subjects) == 1:
		out[0] = err
	default:
		// A step the subjects share failed. Each is verified alone, so
		// that its answer is the one its own Verify gives: an error about
		// its own values only (one subject's value matching too many rows
		// does not fail the others), and a pass where it passes.
		for i := range subjects {
			out[i] = c.VerifyBatch(ctx, subjects[i:i+1])[0]
		}
	}
	return out
}

// verify is VerifyBatch's one run: it sets out[i] to the error of each
// subject with rows left, forgets the kept keys of the others, and
// returns an error when a step shared by the subjects failed.
func (c *Connector) verify(ctx context.Context, subjects []connector.Subject, out []error) error {
	if len(subjects) == 0 {
		return nil
	}
	all := valuesOfAll(subjects)
	if err := ctx.Err(); err != nil {
		return redact(fmt.Errorf("target %q: verify: %w", c.name, err), all.all())
	}
	s, err := c.loadSchema(ctx)
	if err != nil {
		return redact(err, all.all())
	}
	if err := c.ensureLedger(ctx); err != nil {
		return redact(err, all.all())
	}
	vs := make([]values, len(subjects))
	ids := make([]string, len(subjects))
	for i, subj := range subjects {
		vs[i], ids[i] = valuesOf(subj.Identities), subj.RequestID
	}
	// The union of the subjects' matches, kept keys included, as an
	// erase batch selects its rows.
	ms, union, err := c.matchEach(ctx, "verify", s, all, vs, ids)
	if err != nil {
		return err
	}
	var check []*table
	for _, t := range c.tables {
		if t.Action != lethe.ActionRetain {
			check = append(check, t)
		}
	}
	found, err := c.countAll(ctx, check, union, s, true)
	if err != nil {
		return c.failOp(all, "verify", err)
	}
	var left []*table
	for _, t := range check {
		if found[t] > 0 {
			left = append(left, t)
		}
	}
	var probes []probe
	for _, m := range ms {
		for _, t := range left {
			probes = append(probes, probe{t, m})
		}
	}
	n, err := c.countProbes(ctx, nil, probes, s, false)
	if err != nil {
		return c.failOp(all, "verify", err)
	}
	var clean []string
	for i, subj := range subjects {
		var remain []string
		for j, t := range left {
			if k := n[i*len(left)+j]; k > 0 {
				remain = append(remain, fmt.Sprintf("%s (%d rows, %s)", t.Name, k, t.Action))
			}
		}
		if len(remain) > 0 {
			out[i] = fmt.Errorf("target %q: subject data remains in %s", c.name, strings.Join(remain, ", "))
			continue
		}
		clean = append(clean, subj.RequestID)
	}
	// Nothing is left of these subjects: the key values kept for this
	// check go too. A later re-check still finds children by the
	// subject's identity values.
	if err := c.forgetErasedOf(ctx, clean); err != nil {
		return redact(fmt.Errorf("target %q: %w", c.name, err), all.all())
	}
	return nil
}

// forgetErasedOf drops, in one statement, the kept key values of the
// requests whose Verify passed.
func (c *Connector) forgetErasedOf(ctx context.Context, requestIDs []string) error {
	if len(requestIDs) == 0 {
		return nil
	}
	q := &query{d: c.d}
	ids := make([]any, len(requestIDs))
	for i, id := range requestIDs {
		ids[i] = id
	}
	stmt := fmt.Sprintf("DELETE FROM %s WHERE %s AND target = %s", ledgerKeysTable, q.in("request_id", ids, true), q.arg(c.name))
	_, err := c.execContext(ctx, nil, stmt, q.args...)
	return err
}
