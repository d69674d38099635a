package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Every step below follows the same shape, so that a crash at any line
// followed by a rerun of the job ends in the same result:
//
//  1. read, and return early (completing the job) when the request is no
//     longer where this step expects it: the job is a duplicate, or a
//     rerun of a job whose work already committed;
//  2. talk to the targets, changing nothing in the store except the
//     attempt bookkeeping of erase;
//  3. in ONE transaction: compare-and-set the request's (status, stage),
//     and only if that succeeded make the step's changes, append their
//     audit events and insert the next job; then complete this job.
//
// Step 3 is commit; a step that ends the request makes its compare-and-set
// through Terminate, which runs what every end does in the same
// transaction.

// bookkeepingTimeout bounds the store writes made after a connector call.
// They run on a context detached from the job's, so that a job cut short by
// its timeout or by shutdown still records what happened.
const bookkeepingTimeout = 30 * time.Second

func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}

// interrupted reports whether a connector call failed because this process
// is shutting down, which is no fault of the target and must not use up
// one of its attempts' chances to give up.
func (p *Pipeline) interrupted(ctx context.Context) bool {
	return p.stopping.Load() && ctx.Err() != nil
}

// call runs one connector method, turning a panic into an error: a
// connector bug must fail the task, not crash the process, and River would
// otherwise store the panic value (which may hold identity values).
func call[T any](log *slog.Logger, target string, fn func() (T, error)) (res T, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("pipeline: connector panicked", slog.String("target", target), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("connector %q panicked", target)
		}
	}()
	return fn()
}

func (p *Pipeline) audit(ctx context.Context, tx store.Tx, requestID string, typ lethe.EventType, details map[string]string) error {
	return p.appendAudit(ctx, tx, p.event(requestID, typ, details))
}

// event is an audit event of the pipeline about requestID, now.
func (p *Pipeline) event(requestID string, typ lethe.EventType, details map[string]string) *lethe.AuditEvent {
	return &lethe.AuditEvent{
		RequestID: requestID,
		Time:      p.now(),
		Actor:     lethe.ActorSystem,
		Type:      typ,
		Details:   details,
	}
}

// auditBatch is a transaction that appends several audit events in one
// statement (the SQL stores do).
type auditBatch interface {
	AppendAudits(ctx context.Context, events ...*lethe.AuditEvent) error
}

// appendAudit appends events, in order, to their chains in tx.
func (p *Pipeline) appendAudit(ctx context.Context, tx store.Tx, events ...*lethe.AuditEvent) error {
	if b, ok := tx.(auditBatch); ok && len(events) > 1 {
		if err := b.AppendAudits(ctx, events...); err != nil {
			return fmt.Errorf("append audit %s...: %w", events[0].Type, err)
		}
		return nil
	}
	for _, e := range events {
		if err := tx.AppendAudit(ctx, e); err != nil {
			return fmt.Errorf("append audit %s: %w", e.Type, err)
		}
	}
	return nil
}

// commit is step 3 of the protocol above, in one transaction: change
// makes the compare-and-set (advance, or Terminate for a step that ends the
// request) and, only if it won, the step's changes, their audit events and
// the next jobs; then job completes whether or not change happened, so a
// duplicate or a rerun ends here too. It reports whether change happened.
func (p *Pipeline) commit(ctx context.Context, job *rivertype.JobRow, step string, change func(tx store.Tx) (bool, error)) (bool, error) {
	return p.commitIn(ctx, nil, "", job, step, change)
}

// commitIn is commit, for request requestID in a transaction shared with
// the other callers of g (txGroup) when g is not nil: change must then be
// safe to run again after a rollback.
func (p *Pipeline) commitIn(ctx context.Context, g *txGroup, requestID string, job *rivertype.JobRow, step string, change func(tx store.Tx) (bool, error)) (bool, error) {
	var changed bool
	fn := func(tx store.Tx) error {
		changed = false
		ok, err := change(tx)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		changed = ok
		return nil
	}
	var err error
	if g != nil {
		// The group completes its members' jobs together.
		err = g.inTx(ctx, requestID, job, fn)
	} else {
		err = p.st.InTx(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return p.eng.completeTx(ctx, tx, job)
		})
	}
	if err == nil {
		markCompleted(ctx)
	}
	return changed, err
}

// advance compare-and-sets a request that stays open from (status, stage)
// to (toStatus, toStage).
func (p *Pipeline) advance(ctx context.Context, tx store.Tx, requestID string, status lethe.Status, stage lethe.Stage, toStatus lethe.Status, toStage lethe.Stage) (bool, error) {
	return tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
		ID: requestID, From: []lethe.Status{status}, FromStage: []lethe.Stage{stage},
		To: toStatus, ToStage: toStage, At: p.now(),
	})
}

// parallel runs fn(0..n-1) concurrently and waits for all of them.
func parallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// readAt reads a request (with its tasks) for the first part of a step:
// nil, nil when the request is gone or no longer at stage with one of
// statuses, so the job is a duplicate or a rerun of work already committed
// and ends quietly.
func (p *Pipeline) readAt(ctx context.Context, step, requestID string, stage lethe.Stage, statuses ...lethe.Status) (*lethe.Request, error) {
	req, err := p.st.GetRequest(ctx, requestID, store.Scope{All: true})
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("pipeline: "+step+" job for a missing request", slog.String("request_id", requestID))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if !slices.Contains(statuses, req.Status) || req.Stage != stage {
		return nil, nil
	}
	return req, nil
}
