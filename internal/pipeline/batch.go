package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// batcher runs a connector's batch call (EraseBatch, VerifyBatch) for the
// subjects of requests whose jobs reach one target together, gathered as
// gather does (one subject per request). Each job still waits for its
// own subject's result and records it in its own transaction.
type batcher[R any] struct {
	gather[*batchCall[R]]
	log    *slog.Logger
	target string
	// batch calls the connector for one batch: one result per subject,
	// in order, or an error for all of them.
	batch func(ctx context.Context, subjects []connector.Subject) ([]R, error)
}

type batchCall[R any] struct {
	ctx context.Context
	s   connector.Subject
	res R
	err error
}

// eraseBatcher erases through a connector.BatchEraser. The crash-safety
// argument is the one of a job erasing alone, since each job counted its
// attempt before it queued and the connector's batch is idempotent per
// subject (a rerun finishes what a killed batch left).
type eraseBatcher struct{ *batcher[lethe.Report] }

func newEraseBatcher(log *slog.Logger, target string, conn connector.BatchEraser, max int) *eraseBatcher {
	return &eraseBatcher{&batcher[lethe.Report]{gather: gather[*batchCall[lethe.Report]]{max: max}, log: log, target: target, batch: conn.EraseBatch}}
}

// erase erases s within a batch and returns its own report.
func (b *eraseBatcher) erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	return b.do(ctx, s)
}

// verifyBatcher verifies through a connector.BatchVerifier: each subject's
// answer is its own, as its own Verify would give it.
type verifyBatcher struct{ *batcher[error] }

func newVerifyBatcher(log *slog.Logger, target string, conn connector.BatchVerifier, max int) *verifyBatcher {
	return &verifyBatcher{&batcher[error]{gather: gather[*batchCall[error]]{max: max}, log: log, target: target,
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
	c := &batchCall[R]{ctx: ctx, s: s}
	b.gather.do(s.RequestID, c, b.run)
	return c.res, c.err
}

// run calls the connector for one batch on its leader's context and
// hands every caller its own result. A batch's error goes to each of its
// subjects, with every identity of the batch redacted from it: the
// pipeline scrubs a task's error with its own request's identities only.
func (b *batcher[R]) run(batch []*batchCall[R]) {
	for _, c := range batch {
		c.err = errAbandoned
	}
	ctx := batch[0].ctx
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
