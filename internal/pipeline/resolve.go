package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// resolveFrom are the statuses resolve starts from: received as submitted,
// running when an operator redrove the request to be resolved again
// (Redrive).
var resolveFrom = []lethe.Status{lethe.StatusReceived, lethe.StatusRunning}

// resolve finds the subject's linked identities in every target, creates
// one task per target and marks the request running; then, in the same job,
// it erases, verifies and finishes the request on the targets that answer
// at once (startErase). Until its compare-and-set commits, the request can
// be canceled; after it, cancel finds the request running and refuses.
func (p *Pipeline) resolve(ctx context.Context, job *rivertype.JobRow, requestID string, resume bool) error {
	// The row only: a request at resolve has no tasks yet, and one past it
	// is carried on from a read of its own.
	req, err := p.st.ReadRequest(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("pipeline: resolve job for a missing request", slog.String("request_id", requestID))
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if req.Status.Terminal() {
		return nil
	}
	if req.Stage != lethe.StageResolve || !slices.Contains(resolveFrom, req.Status) {
		// Past resolve. On a first attempt, another job moved the request
		// on: this one is a duplicate. Otherwise this job's own earlier
		// attempt did and was cut short (a crash, a store error) before
		// its last step committed, or an operator redrove the request:
		// the stage's own jobs carry it on from where it is stored.
		if job.Attempt <= 1 && !resume {
			return nil
		}
		return p.carryOn(ctx, job, requestID)
	}
	held, approved, err := p.reviewBeforeResolve(ctx, job, req)
	if held || err != nil {
		return err
	}
	given, err := p.st.RequestIdentities(ctx, requestID)
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}

	r := p.resolver()
	r.followAmbiguous = approved
	res := r.resolveIdentities(ctx, requestID, given)
	bctx, cancel := detached(ctx)
	defer cancel()
	if res.err != nil {
		msg := fmt.Sprintf("resolve on target %q: %s", res.target, redact(res.err, res.identities))
		if p.interrupted(ctx) || (!connector.IsPermanent(res.err) && job.Attempt < p.cfg.MaxAttempts) {
			return errors.New(msg) // River retries with backoff
		}
		return p.failResolve(bctx, job, requestID, res.target, msg)
	}
	// Ambiguity first: it names the accounts, which says more than a
	// count of identities does.
	if res.reach.Ambiguous() && !approved {
		return p.holdAmbiguous(bctx, job, requestID, res.reach)
	}
	if len(res.identities) > p.cfg.MaxIdentities {
		msg := fmt.Sprintf("resolve reached %d identities, more than the limit of %d: the data map probably links unrelated subjects", len(res.identities), p.cfg.MaxIdentities)
		return p.failResolve(bctx, job, requestID, "", msg)
	}
	return p.startErase(ctx, bctx, job, requestID, res, len(given), req.CallbackURL != "")
}

// carryOn queues, in one transaction with this job's completion, the jobs
// that carry the request on from its stored stage (see Redrive).
func (p *Pipeline) carryOn(ctx context.Context, job *rivertype.JobRow, requestID string) error {
	_, err := p.commit(ctx, job, "resolve", func(tx store.Tx) (bool, error) {
		req, err := tx.LockRequest(ctx, requestID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil || req.Status.Terminal() {
			return false, err
		}
		next, err := p.redriveJobs(ctx, tx, req)
		if err != nil {
			return false, err
		}
		return true, p.eng.insertTx(ctx, tx, next)
	})
	return err
}

type resolveResult struct {
	identities []lethe.Identity // the given ones first, then the linked ones
	// reach is how far the identities reached in targets that report it
	// (connector.SubjectResolver); nil when none does.
	reach  *lethe.Reach
	rounds int
	capped bool   // stopped at MaxResolveRounds, not at a fixed point
	target string // the target that failed, with err
	err    error
}

// resolveTarget asks one target for the identities linked to s, with how
// far they reach when the connector can say (connector.SubjectResolver).
func resolveTarget(ctx context.Context, c connector.Connector, s connector.Subject) (connector.Resolution, error) {
	if sr, ok := c.(connector.SubjectResolver); ok {
		return sr.ResolveSubject(ctx, s)
	}
	ids, err := c.Resolve(ctx, s)
	return connector.Resolution{Identities: ids}, err
}

// addReach merges one target's resolution into the result. Each round
// asks with every identity known so far, so a later round reaches at
// least as far: the largest count per object is the reach.
func (res *resolveResult) addReach(target string, r connector.Resolution) {
	if len(r.RootRecords) == 0 && len(r.Unfollowed) == 0 {
		return
	}
	if res.reach == nil {
		res.reach = &lethe.Reach{}
	}
	for obj, n := range r.RootRecords {
		if res.reach.Accounts == nil {
			res.reach.Accounts = map[string]int{}
		}
		k := target + "/" + obj
		res.reach.Accounts[k] = max(res.reach.Accounts[k], n)
	}
	for _, u := range r.Unfollowed {
		k := target + "/" + u
		if !slices.Contains(res.reach.Unfollowed, k) {
			res.reach.Unfollowed = append(res.reach.Unfollowed, k)
		}
	}
	slices.Sort(res.reach.Unfollowed)
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
	// closedOn[i], when target i's last resolution was Closed: the
	// identities it was asked with and those it returned. Asked again with
	// no other, it would find nothing new (on a SQL target, one more scan
	// of every identity column per request), so it is asked again only
	// when another target found an identity outside this set.
	closedOn := make([]map[lethe.Identity]bool, len(p.targets))
	for res.rounds < p.cfg.MaxResolveRounds {
		res.rounds++
		subject := connector.Subject{RequestID: requestID, Identities: append([]lethe.Identity(nil), res.identities...)}
		found := make([]connector.Resolution, len(p.targets))
		errs := make([]error, len(p.targets))
		parallel(len(p.targets), func(i int) {
			t := p.targets[i]
			if closedOn[i] != nil && coveredBy(subject.Identities, closedOn[i]) {
				return
			}
			found[i], errs[i] = call(p.log, t.Name, func() (connector.Resolution, error) { return resolveTarget(ctx, t.Conn, subject) })
			closedOn[i] = nil
			if errs[i] == nil && found[i].Closed {
				closedOn[i] = make(map[lethe.Identity]bool, len(subject.Identities)+len(found[i].Identities))
				for _, id := range subject.Identities {
					closedOn[i][id] = true
				}
				for _, id := range found[i].Identities {
					closedOn[i][id] = true
				}
			}
		})
		added := 0
		for i, r := range found {
			ids := r.Identities
			res.addReach(p.targets[i].Name, r)
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
		// An ambiguous subject stops here: following the other accounts'
		// values would only reach further into other people's data.
		if added == 0 || len(res.identities) > p.cfg.MaxIdentities || (res.reach.Ambiguous() && !p.followAmbiguous) {
			return res
		}
	}
	res.capped = true
	p.log.Warn("pipeline: resolve stopped at the round limit before a fixed point",
		slog.String("request_id", requestID), slog.Int("rounds", res.rounds))
	return res
}

// coveredBy reports whether every identity of ids is in set.
func coveredBy(ids []lethe.Identity, set map[lethe.Identity]bool) bool {
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return true
}

// failResolve ends a request whose identities could not be resolved: it
// cannot be erased completely, and erasing it partially while reporting
// success would be worse than failing.
func (p *Pipeline) failResolve(ctx context.Context, job *rivertype.JobRow, requestID, target, msg string) error {
	details := map[string]string{"step": "resolve", "error": msg}
	if target != "" {
		details["target"] = target
	}
	return p.endInResolve(ctx, job, requestID, target, terminate.Ending{Details: details}, msg)
}

// endInResolve fails a request still in resolve with e (To and At are set
// here). Nothing was erased anywhere: resolve creates the erase tasks only
// when it succeeds. When one target's failure is the reason (target set),
// every target is listed as a task so the request shows where it failed.
func (p *Pipeline) endInResolve(ctx context.Context, job *rivertype.JobRow, requestID, target string, e terminate.Ending, msg string) error {
	e.To, e.At = lethe.StatusFailed, p.now()
	failed, err := p.commit(ctx, job, "resolve", func(tx store.Tx) (bool, error) {
		req, err := tx.LockRequest(ctx, requestID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !slices.Contains(resolveFrom, req.Status) || req.Stage != lethe.StageResolve {
			return false, nil
		}
		var tasks []lethe.Task
		if target != "" {
			if tasks, err = p.resolveFailedTasks(ctx, tx, requestID, target, msg); err != nil {
				return false, err
			}
		}
		return p.Terminate(ctx, tx, req, tasks, e)
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

// reachDetails is reach as audit event details: "accounts" lists
// target/object=count, "unfollowed" the places of values not followed.
func reachDetails(reach *lethe.Reach) map[string]string {
	details := map[string]string{}
	if reach == nil {
		return details
	}
	if len(reach.Accounts) > 0 {
		keys := slices.Sorted(maps.Keys(reach.Accounts))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + strconv.Itoa(reach.Accounts[k])
		}
		details["accounts"] = strings.Join(parts, ",")
	}
	if len(reach.Unfollowed) > 0 {
		details["unfollowed"] = strings.Join(reach.Unfollowed, ",")
	}
	return details
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
