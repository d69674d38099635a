package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
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

func (p *Pipeline) audit(ctx context.Context, tx store.Tx, requestID, typ string, details map[string]string) error {
	e := &lethe.AuditEvent{
		RequestID: requestID,
		Time:      p.now(),
		Actor:     lethe.ActorSystem,
		Type:      typ,
		Details:   details,
	}
	if err := tx.AppendAudit(ctx, e); err != nil {
		return fmt.Errorf("append audit %s: %w", typ, err)
	}
	return nil
}

// ---- resolve ----

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

	return p.st.InTx(bctx, func(tx store.Tx) error {
		ok, err := tx.UpdateRequestState(bctx, requestID,
			[]lethe.Status{lethe.StatusReceived}, []lethe.Stage{lethe.StageResolve},
			lethe.StatusRunning, stage, p.now())
		if err != nil {
			return fmt.Errorf("resolve: %w", err)
		}
		if ok {
			if len(linked) > 0 {
				if err := tx.AddLinkedIdentities(bctx, requestID, linked); err != nil {
					return fmt.Errorf("resolve: %w", err)
				}
			}
			if err := tx.CreateTasks(bctx, requestID, names, p.now()); err != nil {
				return fmt.Errorf("resolve: %w", err)
			}
			if err := p.eng.insertTx(bctx, tx, next); err != nil {
				return fmt.Errorf("resolve: %w", err)
			}
			details := map[string]string{
				"targets":           strconv.Itoa(len(names)),
				"linked_identities": strconv.Itoa(len(linked)),
				"resolve_rounds":    strconv.Itoa(res.rounds),
			}
			if res.capped {
				details["resolve_capped"] = "true"
			}
			if err := p.audit(bctx, tx, requestID, "request.running", details); err != nil {
				return fmt.Errorf("resolve: %w", err)
			}
			if err := p.statusChanged(bctx, tx, requestID); err != nil { // callbacks.go
				return fmt.Errorf("resolve: %w", err)
			}
		}
		return p.eng.completeTx(bctx, tx, job)
	})
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
	var failed bool
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		ok, err := tx.UpdateRequestState(ctx, requestID,
			[]lethe.Status{lethe.StatusReceived}, []lethe.Stage{lethe.StageResolve},
			lethe.StatusFailed, lethe.StageDone, p.now())
		if err != nil {
			return fmt.Errorf("resolve: %w", err)
		}
		if ok {
			details := map[string]string{"step": "resolve", "error": msg}
			if target != "" {
				details["target"] = target
			}
			if err := p.audit(ctx, tx, requestID, "request.failed", details); err != nil {
				return fmt.Errorf("resolve: %w", err)
			}
			if err := p.statusChanged(ctx, tx, requestID); err != nil { // callbacks.go
				return fmt.Errorf("resolve: %w", err)
			}
			if err := p.closeRequest(ctx, tx, requestID); err != nil {
				return fmt.Errorf("resolve: %w", err)
			}
		}
		failed = ok
		return p.eng.completeTx(ctx, tx, job)
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

// ---- erase ----

// erase runs one target's erasure of one request. The attempt is counted
// (and committed) before the connector is called, so GET shows attempts in
// flight and a crash mid-call still counts. Connectors' Erase is
// idempotent, so rerunning after a crash finishes what was left.
func (p *Pipeline) erase(ctx context.Context, job *rivertype.JobRow, requestID, target string) error {
	// The attempt and its audit event commit together, before the
	// connector is called, so the log shows every attempt even when the
	// process dies inside it.
	var (
		task lethe.Task
		ok   bool
	)
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		var err error
		task, ok, err = tx.StartTaskAttempt(ctx, requestID, target, p.now())
		if err != nil || !ok {
			return err
		}
		return p.audit(ctx, tx, requestID, "task.running", map[string]string{
			"target": target, "attempt": strconv.Itoa(task.Attempts),
		})
	})
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("pipeline: erase job for a missing task", slog.String("request_id", requestID), slog.String("target", target))
		return nil
	}
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	if !ok {
		return nil // the task already ended: a duplicate job
	}
	bctx, cancel := detached(ctx)
	defer cancel()

	conn := p.byName[target]
	if conn == nil {
		// The target was removed from the data map after the task was
		// created; nothing will ever erase it, so say so.
		return p.endTask(bctx, job, requestID, target, lethe.TaskFailed, lethe.Report{},
			"target is no longer configured", task.Attempts, 0)
	}
	ids, err := p.st.RequestIdentities(ctx, requestID)
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}

	subject := connector.Subject{RequestID: requestID, Identities: ids}
	// A target that confirms asynchronously gets its checkpoint and
	// callback token back, or its task ends on a confirmation it sent.
	if ended, err := p.resumeWait(ctx, bctx, job, task, conn, &subject); ended {
		return err
	}
	began := time.Now()
	// report is the task's total so far (plan and every attempt, see
	// settle), not this attempt's alone.
	at, err := p.eraseAttempt(ctx, bctx, requestID, target, conn, subject)
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	report, err := at.report, at.err
	took := time.Since(began)
	if err == nil {
		return p.endTask(bctx, job, requestID, target, lethe.TaskDone, report, "", task.Attempts, took)
	}
	if connector.IsPending(err) {
		return p.waitPending(bctx, job, task, conn, report, err, ids, took) // async.go
	}

	msg := redact(err, ids)
	if !p.interrupted(ctx) && (connector.IsPermanent(err) || task.Attempts >= p.cfg.MaxAttempts) {
		return p.endTask(bctx, job, requestID, target, lethe.TaskFailed, report, msg, task.Attempts, took)
	}
	if err := p.st.RecordTaskError(bctx, requestID, target, msg, p.now()); err != nil {
		p.log.Error("pipeline: record task error", slog.String("request_id", requestID), slog.String("target", target), slog.String("error", err.Error()))
	}
	// The redacted message, never err itself: River stores and logs it.
	return fmt.Errorf("erase %s (attempt %d): %s", target, task.Attempts, msg)
}

// endTask ends a task and, when it was the last open one, moves the request
// on to verify. The request row is locked first so that the last two tasks
// ending at the same moment cannot both see the other still open.
func (p *Pipeline) endTask(ctx context.Context, job *rivertype.JobRow, requestID, target string, state lethe.TaskState, report lethe.Report, msg string, attempts int, took time.Duration) error {
	var ended bool
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		req, err := tx.LockRequest(ctx, requestID)
		if err != nil {
			return fmt.Errorf("erase %s: %w", target, err)
		}
		ok, err := tx.FinishTask(ctx, requestID, target, state, report, msg, p.now())
		if err != nil {
			return fmt.Errorf("erase %s: %w", target, err)
		}
		ended = ok
		if ok {
			details := map[string]string{
				"target":   target,
				"attempts": strconv.Itoa(attempts),
				"rows":     strconv.FormatInt(report.Total(), 10),
			}
			if msg != "" {
				details["error"] = msg
			}
			if err := p.audit(ctx, tx, requestID, "task."+string(state), details); err != nil {
				return fmt.Errorf("erase %s: %w", target, err)
			}
			if req.Status == lethe.StatusRunning && req.Stage == lethe.StageErase {
				if err := p.fanIn(ctx, tx, requestID); err != nil {
					return fmt.Errorf("erase %s: %w", target, err)
				}
			}
		}
		return p.eng.completeTx(ctx, tx, job)
	})
	if err != nil {
		return err
	}
	if ended {
		if state == lethe.TaskFailed {
			p.log.Warn("pipeline: task failed", slog.String("request_id", requestID), slog.String("target", target),
				slog.Int("attempts", attempts), slog.String("error", msg))
		}
		p.obs.TaskFinished(target, state, attempts, took)
	}
	return nil
}

// fanIn queues verify once no task of the request is left open.
func (p *Pipeline) fanIn(ctx context.Context, tx store.Tx, requestID string) error {
	open, err := tx.CountOpenTasks(ctx, requestID)
	if err != nil || open > 0 {
		return err
	}
	ok, err := tx.UpdateRequestState(ctx, requestID,
		[]lethe.Status{lethe.StatusRunning}, []lethe.Stage{lethe.StageErase},
		lethe.StatusRunning, lethe.StageVerify, p.now())
	if err != nil || !ok {
		return err
	}
	return p.eng.insertTx(ctx, tx, []river.InsertManyParams{verifyJob(requestID)})
}

// ---- verify ----

// verify re-checks every target whose task is done. A target that reports
// data left has its task failed with the connector's (redacted) reason. A
// Verify error is retried like any other (a target briefly down, a replica
// lagging) until MaxAttempts, unless marked connector.Permanent.
func (p *Pipeline) verify(ctx context.Context, job *rivertype.JobRow, requestID string) error {
	req, err := p.st.GetRequest(ctx, requestID, store.Scope{All: true})
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("pipeline: verify job for a missing request", slog.String("request_id", requestID))
		return nil
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if req.Status != lethe.StatusRunning || req.Stage != lethe.StageVerify {
		return nil
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
		conn := p.byName[done[i]]
		if conn == nil {
			errs[i] = connector.Permanent(errors.New("target is no longer configured, so it cannot be verified"))
			return
		}
		_, errs[i] = call(p.log, done[i], func() (struct{}, error) { return struct{}{}, conn.Verify(ctx, subject) })
	})
	lastAttempt := job.Attempt >= p.cfg.MaxAttempts && !p.interrupted(ctx)
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
	return p.st.InTx(bctx, func(tx store.Tx) error {
		ok, err := tx.UpdateRequestState(bctx, requestID,
			[]lethe.Status{lethe.StatusRunning}, []lethe.Stage{lethe.StageVerify},
			lethe.StatusRunning, lethe.StageFinish, p.now())
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if ok {
			for _, target := range done {
				msg, left := residue[target]
				if !left {
					continue
				}
				failed, err := tx.FailVerifiedTask(bctx, requestID, target, msg, p.now())
				if err != nil {
					return fmt.Errorf("verify %s: %w", target, err)
				}
				if failed {
					if err := p.audit(bctx, tx, requestID, "task.failed", map[string]string{
						"target": target, "step": "verify", "error": msg,
					}); err != nil {
						return fmt.Errorf("verify: %w", err)
					}
				}
			}
			if err := p.eng.insertTx(bctx, tx, []river.InsertManyParams{finishJob(requestID)}); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			if err := p.audit(bctx, tx, requestID, "request.verified", map[string]string{
				"verified": strconv.Itoa(len(done) - len(residue)),
				"residue":  strconv.Itoa(len(residue)),
			}); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
		}
		return p.eng.completeTx(bctx, tx, job)
	})
}

// ---- finish ----

// finish closes the request: completed when every task is done or
// skipped, failed otherwise.
func (p *Pipeline) finish(ctx context.Context, job *rivertype.JobRow, requestID string) error {
	var status lethe.Status
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		req, err := tx.LockRequest(ctx, requestID)
		if errors.Is(err, store.ErrNotFound) {
			p.log.Warn("pipeline: finish job for a missing request", slog.String("request_id", requestID))
			return p.eng.completeTx(ctx, tx, job)
		}
		if err != nil {
			return fmt.Errorf("finish: %w", err)
		}
		if req.Status != lethe.StatusRunning || req.Stage != lethe.StageFinish {
			return p.eng.completeTx(ctx, tx, job) // already finished: a duplicate
		}
		tasks, err := tx.ListTasks(ctx, requestID)
		if err != nil {
			return fmt.Errorf("finish: %w", err)
		}
		to := lethe.StatusCompleted
		var failed int
		var rows int64
		for _, t := range tasks {
			if t.State != lethe.TaskDone && t.State != lethe.TaskSkipped {
				to = lethe.StatusFailed
				failed++
			}
			rows += t.Report.Total()
		}

		ok, err := tx.UpdateRequestState(ctx, requestID,
			[]lethe.Status{lethe.StatusRunning}, []lethe.Stage{lethe.StageFinish},
			to, lethe.StageDone, p.now())
		if err != nil {
			return fmt.Errorf("finish: %w", err)
		}
		if ok {
			// The rest of closing a request belongs here, in this
			// transaction and only after the compare-and-set won: the
			// signed receipt, the callback (as a job of its own, inserted
			// here), and minimisation (dropping the plaintext identities,
			// keeping their keyed hashes).
			if err := p.audit(ctx, tx, requestID, "request."+string(to), map[string]string{
				"tasks":  strconv.Itoa(len(tasks)),
				"failed": strconv.Itoa(failed),
				"rows":   strconv.FormatInt(rows, 10),
			}); err != nil {
				return fmt.Errorf("finish: %w", err)
			}
			// Suppression list and callback (callbacks.go): the list
			// needs the identities' values, so before closeRequest.
			if err := p.statusChanged(ctx, tx, requestID); err != nil {
				return fmt.Errorf("finish: %w", err)
			}
			// Receipt, then minimisation (close.go): hooks that need the
			// identities' values must run before this line.
			if err := p.closeRequest(ctx, tx, requestID); err != nil {
				return fmt.Errorf("finish: %w", err)
			}
			status = to
		}
		return p.eng.completeTx(ctx, tx, job)
	})
	if err != nil {
		return err
	}
	if status != "" {
		p.log.Info("pipeline: request finished", slog.String("request_id", requestID), slog.String("status", string(status)))
		p.obs.RequestFinished(status)
	}
	return nil
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
