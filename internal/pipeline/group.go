package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe/internal/store"
)

// txGroup runs the transactions of requests that reach the same point
// together as one store transaction, gathered as gather does (one call
// per request, so no member sees a row another member of its group
// changed). A lone caller is a group of one, in a transaction of its own
// as before. A group shares its begin, its commit (one flush of the log,
// one lock of SQLite's single writer), the completion of its members'
// jobs, the locks and heads of their audit chains, and every statement
// the store defers to the commit (a transaction's audit events are one
// INSERT).
//
// Each member's work is unchanged and still atomic: the group's
// transaction commits all of it or none, so a crash leaves every member
// exactly where a crash of its own transaction would. When the group's
// transaction fails (a member's error, a lost race, a deadlock), it rolls
// back and every member runs again in a transaction of its own, so each
// gets the outcome and the error it would have had alone: a member's fn
// must therefore be safe to run again after a rollback (set its results
// afresh on every run). Members run in request order, so two groups lock
// the rows of requests they both touch in the same order.
type txGroup struct {
	gather[*groupCall]
	st store.Store
	// complete marks members' jobs completed in the transaction, all of
	// them in one statement (engine.completeTx).
	complete func(ctx context.Context, tx store.Tx, jobs ...*rivertype.JobRow) error
}

type groupCall struct {
	ctx context.Context
	key string // the request's id: the order members run in
	fn  func(store.Tx) error
	job *rivertype.JobRow // completed with fn's changes, when not nil
	err error
}

func newTxGroup(st store.Store, max int, complete func(ctx context.Context, tx store.Tx, jobs ...*rivertype.JobRow) error) *txGroup {
	return &txGroup{gather: gather[*groupCall]{max: max}, st: st, complete: complete}
}

// inTx runs fn, and completes job when it is not nil, in a transaction
// shared with the callers waiting with it.
func (g *txGroup) inTx(ctx context.Context, key string, job *rivertype.JobRow, fn func(store.Tx) error) error {
	c := &groupCall{ctx: ctx, key: key, fn: fn, job: job}
	g.do(key, c, g.run)
	return c.err
}

// chainLocker is a transaction that takes the locks and heads of many
// audit chains in a few statements (the SQL stores' LockChains).
type chainLocker interface {
	LockChains(ctx context.Context, requestIDs []string) error
}

// errMemberFailed stops a group's transaction at a member's error; the
// member's own error is the one it gets when it runs alone.
var errMemberFailed = errors.New("a member of the group failed")

func (g *txGroup) run(members []*groupCall) {
	for _, m := range members {
		m.err = errAbandoned
	}
	if len(members) == 1 {
		members[0].err = g.alone(members[0])
		return
	}
	slices.SortFunc(members, func(a, b *groupCall) int { return strings.Compare(a.key, b.key) })
	// The transaction is begun and committed under the first member's
	// context; every statement runs under its own member's.
	err := g.st.InTx(members[0].ctx, func(tx store.Tx) error {
		// Every member appends to its request's audit chain: the chains'
		// locks and heads are taken for all of them at once.
		if l, ok := tx.(chainLocker); ok {
			keys := make([]string, len(members))
			for i, m := range members {
				keys[i] = m.key
			}
			if err := l.LockChains(members[0].ctx, keys); err != nil {
				return err
			}
		}
		var jobs []*rivertype.JobRow
		for _, m := range members {
			if m.ctx.Err() != nil || m.fn(tx) != nil {
				return errMemberFailed
			}
			if m.job != nil {
				jobs = append(jobs, m.job)
			}
		}
		if len(jobs) == 0 {
			return nil
		}
		return g.complete(members[0].ctx, tx, jobs...)
	})
	if err == nil {
		for _, m := range members {
			m.err = nil
		}
		return
	}
	parallel(len(members), func(i int) {
		members[i].err = g.alone(members[i])
	})
}

// alone runs m in a transaction of its own.
func (g *txGroup) alone(m *groupCall) error {
	return g.st.InTx(m.ctx, func(tx store.Tx) error {
		if err := m.fn(tx); err != nil {
			return err
		}
		if m.job == nil {
			return nil
		}
		return g.complete(m.ctx, tx, m.job)
	})
}
