package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// verify re-checks every target whose task is done. A target that reports
// data left has its task failed with the connector's (redacted) reason. A
// Verify error is retried like any other (a target briefly down, a replica
// lagging) until MaxAttempts, unless marked connector.Permanent.
func (p *Pipeline) verify(ctx context.Context, job *rivertype.JobRow, requestID string, tried int) error {
	req, err := p.readAt(ctx, "verify", requestID, lethe.StageVerify, lethe.StatusRunning)
	if req == nil || err != nil {
		return err
	}
	ids, err := p.st.RequestIdentities(ctx, requestID)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}

	var done []string
	for _, t := range req.Tasks {
		if t.State == lethe.TaskDone {
			done = append(done, t.Target)
		}
	}
	subject := connector.Subject{RequestID: requestID, Identities: ids}
	errs := make([]error, len(done))
	parallel(len(done), func(i int) {
		if len(ids) == 0 {
			// Without identities every target would look clean.
			errs[i] = connector.Permanent(errors.New(errNoIdentities + ", so it cannot be verified"))
			return
		}
		conn := p.byName[done[i]]
		if conn == nil {
			errs[i] = connector.Permanent(errors.New("target is no longer configured, so it cannot be verified"))
			return
		}
		errs[i] = p.verifyTarget(ctx, done[i], conn, subject)
	})
	lastAttempt := job.Attempt+tried >= p.cfg.MaxAttempts && !p.interrupted(ctx)
	residue := map[string]string{}
	for i, err := range errs {
		if err == nil {
			continue
		}
		msg := redact(err, ids)
		if !lastAttempt && (p.interrupted(ctx) || !connector.IsPermanent(err)) {
			return fmt.Errorf("verify %s: %s", done[i], msg)
		}
		residue[done[i]] = msg
	}

	bctx, cancel := detached(ctx)
	defer cancel()
	_, err = p.commit(bctx, job, "verify", func(tx store.Tx) (bool, error) {
		ok, err := p.advance(bctx, tx, requestID, lethe.StatusRunning, lethe.StageVerify, lethe.StatusRunning, lethe.StageFinish)
		if err != nil || !ok {
			return false, err
		}
		for _, target := range done {
			msg, left := residue[target]
			if !left {
				continue
			}
			failed, err := tx.FailVerifiedTask(bctx, requestID, target, msg, p.now())
			if err != nil {
				return false, fmt.Errorf("%s: %w", target, err)
			}
			if failed {
				if err := p.audit(bctx, tx, requestID, lethe.EventTaskFailed, map[string]string{
					"target": target, "step": "verify", "error": msg,
				}); err != nil {
					return false, err
				}
			}
		}
		if err := p.eng.insertTx(bctx, tx, []river.InsertManyParams{finishJob(requestID)}); err != nil {
			return false, err
		}
		return true, p.audit(bctx, tx, requestID, lethe.EventRequestVerified, map[string]string{
			"verified": strconv.Itoa(len(done) - len(residue)),
			"residue":  strconv.Itoa(len(residue)),
		})
	})
	return err
}

// verifyTarget verifies subject on one target: with the subjects other
// requests verify there at the same moment when the target verifies in
// batches (verifyBatcher), else alone.
func (p *Pipeline) verifyTarget(ctx context.Context, target string, conn connector.Connector, subject connector.Subject) error {
	if b := p.verifiers[target]; b != nil {
		return b.verify(ctx, subject)
	}
	_, err := call(p.log, target, func() (struct{}, error) { return struct{}{}, conn.Verify(ctx, subject) })
	return err
}
