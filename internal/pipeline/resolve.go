package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// resolve finds the subject's linked identities in every target, then
// creates one task and one erase job per target and marks the request
// running. Until its compare-and-set commits, the request can be canceled;
// after it, cancel finds the request running and refuses.
func (p *Pipeline) resolve(ctx context.Context, job *rivertype.JobRow, requestID string) error {
	req, err := p.st.GetRequest(ctx, requestID, store.Scope{All: true})
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("pipeline: resolve job for a missing request", slog.String("request_id", requestID))
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if req.Status != lethe.StatusReceived || req.Stage != lethe.StageResolve {
		return nil // canceled, or resolve already ran
	}
	given, err := p.st.RequestIdentities(ctx, requestID)
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}

	res := p.resolver().resolveIdentities(ctx, requestID, given)
	bctx, cancel := detached(ctx)
	defer cancel()
	if res.err != nil {
		msg := fmt.Sprintf("resolve on target %q: %s", res.target, redact(res.err, res.identities))
		if p.interrupted(ctx) || (!connector.IsPermanent(res.err) && job.Attempt < p.cfg.MaxAttempts) {
			return errors.New(msg) // River retries with backoff
		}
		return p.failResolve(bctx, job, requestID, res.target, msg)
	}
	if len(res.identities) > p.cfg.MaxIdentities {
		msg := fmt.Sprintf("resolve reached %d identities, more than the limit of %d: the data map probably links unrelated subjects", len(res.identities), p.cfg.MaxIdentities)
		return p.failResolve(bctx, job, requestID, "", msg)
	}
	linked := res.identities[len(given):]

	names := make([]string, len(p.targets))
	next := make([]river.InsertManyParams, 0, len(p.targets))
	for i, t := range p.targets {
		names[i] = t.Name
		next = append(next, eraseJob(requestID, t.Name))
	}
	stage := lethe.StageErase
	if len(names) == 0 {
		// Nothing to erase: verify and finish still run, so a request ends
		// the same way (and with the same audit trail) with or without
		// targets.
		stage = lethe.StageVerify
		next = append(next, verifyJob(requestID))
	}

	_, err = p.commit(bctx, job, "resolve", func(tx store.Tx) (bool, error) {
		ok, err := p.advance(bctx, tx, requestID, lethe.StatusReceived, lethe.StageResolve, lethe.StatusRunning, stage)
		if err != nil || !ok {
			return false, err
		}
		if len(linked) > 0 {
			if err := tx.AddLinkedIdentities(bctx, requestID, linked); err != nil {
				return false, err
			}
		}
		if err := tx.CreateTasks(bctx, requestID, names, p.now()); err != nil {
			return false, err
		}
		if err := p.eng.insertTx(bctx, tx, next); err != nil {
			return false, err
		}
		details := map[string]string{
			"targets":           strconv.Itoa(len(names)),
			"linked_identities": strconv.Itoa(len(linked)),
			"resolve_rounds":    strconv.Itoa(res.rounds),
		}
		if res.capped {
			details["resolve_capped"] = "true"
		}
		if err := p.audit(bctx, tx, requestID, lethe.EventRequestRunning, details); err != nil {
			return false, err
		}
		return true, p.statusMoved(bctx, tx, requestID)
	})
	return err
}

type resolveResult struct {
	identities []lethe.Identity // the given ones first, then the linked ones
	rounds     int
	capped     bool   // stopped at MaxResolveRounds, not at a fixed point
	target     string // the target that failed, with err
	err        error
}

// resolveIdentities asks every target for identities linked to the known
// ones, round after round, until a round finds nothing new: the email finds
// user 42 in one target, and user 42 finds the customer number in another.
// Rounds are capped because a data map could link in cycles that keep
// producing "new" values.
func (p *resolver) resolveIdentities(ctx context.Context, requestID string, given []lethe.Identity) resolveResult {
	res := resolveResult{identities: append([]lethe.Identity(nil), given...)}
	known := make(map[lethe.Identity]bool, len(given))
	for _, id := range given {
		known[id] = true
	}
	if len(p.targets) == 0 {
		return res
	}
	for res.rounds < p.cfg.MaxResolveRounds {
		res.rounds++
		subject := connector.Subject{RequestID: requestID, Identities: append([]lethe.Identity(nil), res.identities...)}
		found := make([][]lethe.Identity, len(p.targets))
		errs := make([]error, len(p.targets))
		parallel(len(p.targets), func(i int) {
			t := p.targets[i]
			found[i], errs[i] = call(p.log, t.Name, func() ([]lethe.Identity, error) { return t.Conn.Resolve(ctx, subject) })
		})
		added := 0
		for i, ids := range found {
			if errs[i] != nil {
				res.target, res.err = p.targets[i].Name, errs[i]
				// Scrub the values this round found too, in case the error
				// quotes one of them.
				res.identities = append(res.identities, ids...)
				return res
			}
			invalid := 0
			for _, id := range ids {
				n, err := lethe.NormalizeIdentity(id)
				if err != nil {
					invalid++
					continue
				}
				if !known[n] {
					known[n] = true
					res.identities = append(res.identities, n)
					added++
				}
			}
			if invalid > 0 {
				p.log.Warn("pipeline: target resolved invalid identities; ignored them",
					slog.String("request_id", requestID), slog.String("target", p.targets[i].Name), slog.Int("count", invalid))
			}
		}
		if added == 0 || len(res.identities) > p.cfg.MaxIdentities {
			return res
		}
	}
	res.capped = true
	p.log.Warn("pipeline: resolve stopped at the round limit before a fixed point",
		slog.String("request_id", requestID), slog.Int("rounds", res.rounds))
	return res
}

// failResolve ends a request whose identities could not be resolved: it
// cannot be erased completely, and erasing it partially while reporting
// success would be worse than failing.
func (p *Pipeline) failResolve(ctx context.Context, job *rivertype.JobRow, requestID, target, msg string) error {
	failed, err := p.commit(ctx, job, "resolve", func(tx store.Tx) (bool, error) {
		req, err := tx.LockRequest(ctx, requestID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if req.Status != lethe.StatusReceived || req.Stage != lethe.StageResolve {
			return false, nil
		}
		details := map[string]string{"step": "resolve", "error": msg}
		if target != "" {
			details["target"] = target
		}
		tasks, err := p.resolveFailedTasks(ctx, tx, requestID, target, msg)
		if err != nil {
			return false, err
		}
		return p.Terminate(ctx, tx, req, tasks, terminate.Ending{To: lethe.StatusFailed, At: p.now(), Details: details})
	})
	if err != nil {
		return err
	}
	if failed {
		p.log.Warn("pipeline: request failed in resolve", slog.String("request_id", requestID), slog.String("error", msg))
		p.obs.RequestFinished(lethe.StatusFailed)
	}
	return nil
}

// resolveFailedTasks lists every target of a request that failed in
// resolve as a task, so that its GET and receipt show where it failed:
// the target that failed with its (redacted) error, the others skipped,
// as nothing was erased anywhere.
func (p *Pipeline) resolveFailedTasks(ctx context.Context, tx store.Tx, requestID, target, msg string) ([]lethe.Task, error) {
	names := make([]string, len(p.targets))
	for i, t := range p.targets {
		names[i] = t.Name
	}
	if err := tx.CreateTasks(ctx, requestID, names, p.now()); err != nil {
		return nil, err
	}
	for _, name := range names {
		end := store.FinishTaskParams{RequestID: requestID, Target: name, State: lethe.TaskSkipped, At: p.now(),
			LastError: "not started: the request failed in resolve"}
		if name == target {
			end.State, end.LastError = lethe.TaskFailed, msg
		}
		if _, err := tx.FinishTask(ctx, end); err != nil {
			return nil, err
		}
	}
	return tx.ListTasks(ctx, requestID)
}
