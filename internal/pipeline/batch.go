package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// eraseBatcher erases, through a connector.BatchEraser, the subjects of
// requests whose jobs reach one target together: while one batch runs,
// the jobs arriving queue up, and the next batch takes them all (up to
// max). Nothing waits for a batch to fill: a lone request is a batch of
// one. Each job still waits for its own subject's report and commits it
// in its own transaction; the crash-safety argument is the one of a job
// erasing alone, since each job counted its attempt before it queued and
// the connector's batch is idempotent per subject (a rerun finishes what
// a killed batch left).
//
// The caller that finds no batch running leads: it runs batches until its
// own subject is done, then hands the lead to the oldest caller still
// waiting, so no job works for others after its own erasure ended.
type eraseBatcher struct {
	log    *slog.Logger
	target string
	conn   connector.BatchEraser
	max    int

	mu    sync.Mutex
	queue []*batchCall
	busy  bool
}

type batchCall struct {
	ctx    context.Context
	s      connector.Subject
	report lethe.Report
	err    error
	done   chan struct{} // closed when report and err are set
	lead   chan struct{} // closed when this caller is to lead
}

func newEraseBatcher(log *slog.Logger, target string, conn connector.BatchEraser, max int) *eraseBatcher {
	return &eraseBatcher{log: log, target: target, conn: conn, max: max}
}

// erase erases s within a batch and returns its own report.
func (b *eraseBatcher) erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	c := &batchCall{ctx: ctx, s: s, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	leading := !b.busy
	b.busy = true
	b.mu.Unlock()
	if !leading {
		select {
		case <-c.done:
			return c.report, c.err
		case <-c.lead:
		}
	}
	b.lead(c)
	return c.report, c.err
}

// lead runs batches until c's subject is done, then passes the lead on.
func (b *eraseBatcher) lead(c *batchCall) {
	for {
		select {
		case <-c.done:
			b.mu.Lock()
			if len(b.queue) == 0 {
				b.busy = false
			} else {
				close(b.queue[0].lead)
			}
			b.mu.Unlock()
			return
		default:
		}
		b.run(c.ctx, b.take())
	}
}

// take removes the next batch from the queue: at most max calls, one per
// request (a duplicate job of a request already in the batch waits for
// the next one, as the connector needs distinct RequestIDs).
func (b *eraseBatcher) take() []*batchCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[string]bool{}
	var batch, rest []*batchCall
	for _, c := range b.queue {
		if len(batch) < b.max && !seen[c.s.RequestID] {
			seen[c.s.RequestID] = true
			batch = append(batch, c)
		} else {
			rest = append(rest, c)
		}
	}
	b.queue = rest
	return batch
}

// run erases one batch on ctx (its leader's) and hands every caller its
// own report. A batch's error goes to each of its subjects, with every
// identity of the batch redacted from it: the pipeline scrubs a task's
// error with its own request's identities only.
func (b *eraseBatcher) run(ctx context.Context, batch []*batchCall) {
	if len(batch) == 0 {
		return
	}
	subjects := make([]connector.Subject, len(batch))
	var all []lethe.Identity
	for i, c := range batch {
		subjects[i] = c.s
		all = append(all, c.s.Identities...)
	}
	reports, err := call(b.log, b.target, func() ([]lethe.Report, error) { return b.conn.EraseBatch(ctx, subjects) })
	if err == nil && len(reports) != len(batch) {
		err = connector.Permanent(fmt.Errorf("connector returned %d reports for a batch of %d subjects", len(reports), len(batch)))
	}
	if err != nil {
		scrubbed := errors.New(redact(err, all))
		if connector.IsPermanent(err) {
			scrubbed = connector.Permanent(scrubbed)
		}
		err = scrubbed
	}
	for i, c := range batch {
		if len(reports) == len(batch) {
			c.report = reports[i]
		}
		c.err = err
		close(c.done)
	}
}
