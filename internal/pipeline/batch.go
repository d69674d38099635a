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

// batcher runs a connector's batch call (EraseBatch, VerifyBatch) for the
// subjects of requests whose jobs reach one target together: while one
// batch runs, the jobs arriving queue up, and the next batch takes them
// all (up to max). Nothing waits for a batch to fill: a lone request is a
// batch of one. Each job still waits for its own subject's result and
// records it in its own transaction.
//
// The caller that finds no batch running leads: it runs batches until its
// own subject is done, then hands the lead to the oldest caller still
// waiting, so no job works for others after its own call ended.
type batcher[R any] struct {
	log    *slog.Logger
	target string
	max    int
	// batch calls the connector for one batch: one result per subject,
	// in order, or an error for all of them.
	batch func(ctx context.Context, subjects []connector.Subject) ([]R, error)

	mu    sync.Mutex
	queue []*batchCall[R]
	busy  bool
}

type batchCall[R any] struct {
	ctx  context.Context
	s    connector.Subject
	res  R
	err  error
	done chan struct{} // closed when res and err are set
	lead chan struct{} // closed when this caller is to lead
}

// eraseBatcher erases through a connector.BatchEraser. The crash-safety
// argument is the one of a job erasing alone, since each job counted its
// attempt before it queued and the connector's batch is idempotent per
// subject (a rerun finishes what a killed batch left).
type eraseBatcher struct{ *batcher[lethe.Report] }

func newEraseBatcher(log *slog.Logger, target string, conn connector.BatchEraser, max int) *eraseBatcher {
	return &eraseBatcher{&batcher[lethe.Report]{log: log, target: target, max: max, batch: conn.EraseBatch}}
}

// erase erases s within a batch and returns its own report.
func (b *eraseBatcher) erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	return b.do(ctx, s)
}

// verifyBatcher verifies through a connector.BatchVerifier: each subject's
// answer is its own, as its own Verify would give it.
type verifyBatcher struct{ *batcher[error] }

func newVerifyBatcher(log *slog.Logger, target string, conn connector.BatchVerifier, max int) *verifyBatcher {
	return &verifyBatcher{&batcher[error]{log: log, target: target, max: max,
		batch: func(ctx context.Context, subjects []connector.Subject) ([]error, error) {
			answers := conn.VerifyBatch(ctx, subjects)
			all := batchIdentities(subjects)
			for i, err := range answers {
				answers[i] = scrubBatch(err, all)
			}
			return answers, nil
		}}}
}

// verify verifies s within a batch and returns its own answer.
func (b *verifyBatcher) verify(ctx context.Context, s connector.Subject) error {
	answer, err := b.do(ctx, s)
	if err != nil {
		return err
	}
	return answer
}

// do runs s's call within a batch and returns its own result.
func (b *batcher[R]) do(ctx context.Context, s connector.Subject) (R, error) {
	c := &batchCall[R]{ctx: ctx, s: s, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	leading := !b.busy
	b.busy = true
	b.mu.Unlock()
	if !leading {
		select {
		case <-c.done:
			return c.res, c.err
		case <-c.lead:
		}
	}
	b.lead(c)
	return c.res, c.err
}

// lead runs batches until c's subject is done, then passes the lead on.
func (b *batcher[R]) lead(c *batchCall[R]) {
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
// the next one, as the connectors need distinct RequestIDs).
func (b *batcher[R]) take() []*batchCall[R] {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[string]bool{}
	var batch, rest []*batchCall[R]
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

// run calls the connector for one batch on ctx (its leader's) and hands
// every caller its own result. A batch's error goes to each of its
// subjects, with every identity of the batch redacted from it: the
// pipeline scrubs a task's error with its own request's identities only.
func (b *batcher[R]) run(ctx context.Context, batch []*batchCall[R]) {
	if len(batch) == 0 {
		return
	}
	subjects := make([]connector.Subject, len(batch))
	for i, c := range batch {
		subjects[i] = c.s
	}
	res, err := call(b.log, b.target, func() ([]R, error) { return b.batch(ctx, subjects) })
	if err == nil && len(res) != len(batch) {
		err = connector.Permanent(fmt.Errorf("connector returned %d results for a batch of %d subjects", len(res), len(batch)))
	}
	err = scrubBatch(err, batchIdentities(subjects))
	for i, c := range batch {
		if len(res) == len(batch) {
			c.res = res[i]
		}
		c.err = err
		close(c.done)
	}
}

// batchIdentities lists the identities of every subject of a batch.
func batchIdentities(subjects []connector.Subject) []lethe.Identity {
	var all []lethe.Identity
	for _, s := range subjects {
		all = append(all, s.Identities...)
	}
	return all
}

// scrubBatch redacts every identity of a batch from an error one of its
// subjects is given; an error no retry can fix stays so.
func scrubBatch(err error, all []lethe.Identity) error {
	if err == nil {
		return nil
	}
	scrubbed := errors.New(redact(err, all))
	if connector.IsPermanent(err) {
		return connector.Permanent(scrubbed)
	}
	return scrubbed
}
