package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// Holds stop a request for a person to decide. Before erasure starts,
// resolve holds a request when the review policy asks for approval or a
// waiting period, and when the identities reach more than one account; an
// operator may place a legal hold at any time before the request ends. A
// held request has status held at the stage it stopped at; every step's
// compare-and-set expects running (or received), so nothing moves it on,
// and erase checks for the hold before each attempt. When its last hold
// ends (approved, released, or the waiting period over) it goes back to
// received or running at that stage and Redrive queues the job that
// carries it on. Denying ends it through terminate like every end.

// Review is the review policy: which requests wait for an operator before
// erasure starts. The zero Review holds nothing.
type Review struct {
	// ApproveRegulations holds every request made under these regulations
	// for an operator's approval. Default none.
	ApproveRegulations []lethe.Regulation
	// ApproveClients holds every request submitted by these clients
	// (by name; "admin" for requests of the admin token). Default none.
	ApproveClients []string
	// WaitingPeriod, when positive, starts erasure only this long after
	// a request was received, unless it is canceled first. Default 0.
	WaitingPeriod time.Duration
	// SweepInterval is how often waiting periods that ended are released.
	// Default 1m.
	SweepInterval time.Duration
}

// DefaultHoldSweepInterval is Review.SweepInterval's default.
const DefaultHoldSweepInterval = time.Minute

// AdminClientName stands for the admin token in Review.ApproveClients.
const AdminClientName = "admin"

func (r Review) withDefaults() Review {
	if r.SweepInterval == 0 {
		r.SweepInterval = DefaultHoldSweepInterval
	}
	return r
}

func (r Review) check() error {
	if r.WaitingPeriod < 0 || r.SweepInterval < 0 {
		return errors.New("Review durations must not be negative")
	}
	return nil
}

// MaxNoteLen bounds an operator's free text.
const MaxNoteLen = 500

// checkNote refuses a note that holds, or looks like it holds, personal
// data: an identity of the request (in any form redact knows) or any email
// address or phone number. The message never quotes the note.
func checkNote(field, note string, ids []lethe.Identity) error {
	if len(note) > MaxNoteLen {
		return lethe.Errorf(lethe.EINVALID, "%s may be at most %d bytes", field, MaxNoteLen)
	}
	if strings.IndexFunc(note, unicode.IsControl) >= 0 {
		return lethe.Errorf(lethe.EINVALID, "%s must be one line of text without control characters", field)
	}
	if redactString(note, ids) != note {
		return lethe.Errorf(lethe.EINVALID, "%s must not hold an identity, email address or phone number", field)
	}
	return nil
}

// holdSweepArgs is empty: a sweep releases whatever waiting period is due.
type holdSweepArgs struct{}

func (holdSweepArgs) Kind() string { return "lethe.hold_sweep" }

type holdSweepWorker struct {
	river.WorkerDefaults[holdSweepArgs]
	p *Pipeline
}

func (w *holdSweepWorker) Work(ctx context.Context, _ *river.Job[holdSweepArgs]) error {
	_, err := w.p.SweepHolds(ctx)
	return err
}

// reviewJobs schedules the waiting-period sweep when a waiting period is
// configured.
func (p *Pipeline) reviewJobs() []*river.PeriodicJob {
	if p.cfg.Review.WaitingPeriod <= 0 {
		return nil
	}
	return []*river.PeriodicJob{periodicJob(p.cfg.Review.SweepInterval, holdSweepArgs{}, priorityClose)}
}

// decided reports whether a hold of reason on this request has ended in a
// way that lets erasure go on (approved, released, expired): resolve does
// not place it again when the request comes back to it.
func decided(holds []store.Hold, reason lethe.HoldReason) bool {
	return slices.ContainsFunc(holds, func(h store.Hold) bool {
		return h.Reason == reason && !h.Active() && h.EndedAs != store.HoldDenied && h.EndedAs != store.HoldCanceled
	})
}

func active(holds []store.Hold) []store.Hold {
	var out []store.Hold
	for _, h := range holds {
		if h.Active() {
			out = append(out, h)
		}
	}
	return out
}

// policyHolds are the holds the review policy asks of req before resolve,
// leaving out those already decided.
func (p *Pipeline) policyHolds(ctx context.Context, req *lethe.Request, holds []store.Hold) ([]store.Hold, error) {
	var out []store.Hold
	now := p.now()
	rv := p.cfg.Review
	if rv.WaitingPeriod > 0 && !decided(holds, lethe.HoldWaitingPeriod) {
		if until := req.ReceivedAt.Add(rv.WaitingPeriod); now.Before(until) {
			out = append(out, store.Hold{RequestID: req.ID, Reason: lethe.HoldWaitingPeriod, Until: until, PlacedAt: now})
		}
	}
	if !decided(holds, lethe.HoldApprovalRequired) {
		need := slices.Contains(rv.ApproveRegulations, req.Regulation)
		if !need && len(rv.ApproveClients) > 0 {
			name := AdminClientName
			if req.ClientID != "" {
				c, err := p.st.GetClient(ctx, req.ClientID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
				if c != nil {
					name = c.Name
				}
			}
			need = slices.Contains(rv.ApproveClients, name)
		}
		if need {
			out = append(out, store.Hold{RequestID: req.ID, Reason: lethe.HoldApprovalRequired, PlacedAt: now})
		}
	}
	return out, nil
}

// reviewBeforeResolve is resolve's first check: it holds the request when
// the policy asks, and otherwise says whether an ambiguous subject was
// already approved (then resolve follows every account it reaches).
func (p *Pipeline) reviewBeforeResolve(ctx context.Context, job *rivertype.JobRow, req *lethe.Request) (held, ambiguityApproved bool, err error) {
	holds, err := p.st.ListHolds(ctx, req.ID)
	if err != nil {
		return false, false, fmt.Errorf("resolve: %w", err)
	}
	want, err := p.policyHolds(ctx, req, holds)
	if err != nil {
		return false, false, fmt.Errorf("resolve: %w", err)
	}
	if len(want) == 0 {
		return false, decided(holds, lethe.HoldAmbiguousSubject), nil
	}
	return true, false, p.holdInResolve(ctx, job, req.ID, want, nil)
}

// holdAmbiguous holds a request whose identities reach more than one
// account: erasing would erase somebody else too, so an operator decides
// whether they are one person (approve) or not (deny).
func (p *Pipeline) holdAmbiguous(ctx context.Context, job *rivertype.JobRow, requestID string, reach *lethe.Reach) error {
	h := store.Hold{RequestID: requestID, Reason: lethe.HoldAmbiguousSubject, PlacedAt: p.now()}
	return p.holdInResolve(ctx, job, requestID, []store.Hold{h}, reach)
}

// holdInResolve moves a request from (received, resolve) to (held,
// resolve) with its holds, and completes the resolve job.
func (p *Pipeline) holdInResolve(ctx context.Context, job *rivertype.JobRow, requestID string, holds []store.Hold, reach *lethe.Reach) error {
	held, err := p.commit(ctx, job, "resolve", func(tx store.Tx) (bool, error) {
		ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
			ID: requestID, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageResolve},
			To: lethe.StatusHeld, ToStage: lethe.StageResolve, At: p.now(), Reach: reach,
		})
		if err != nil || !ok {
			return false, err
		}
		return true, p.placeHolds(ctx, tx, requestID, holds, reachDetails(reach))
	})
	if err == nil && held {
		p.log.Info("pipeline: request held for review", slog.String("request_id", requestID))
	}
	return err
}

// placeHolds stores the service's holds on a request tx has just moved to
// held, with one audit event each, and its status event.
func (p *Pipeline) placeHolds(ctx context.Context, tx store.Tx, requestID string, holds []store.Hold, extra map[string]string) error {
	for _, h := range holds {
		if _, err := tx.PlaceHold(ctx, h); err != nil {
			return err
		}
		details := map[string]string{"reason": string(h.Reason)}
		for k, v := range extra {
			details[k] = v
		}
		if h.Note != "" {
			details["note"] = h.Note
		}
		if !h.Until.IsZero() {
			details["until"] = h.Until.UTC().Format(time.RFC3339)
		}
		if err := p.audit(ctx, tx, requestID, lethe.EventRequestHeld, details); err != nil {
			return err
		}
	}
	return p.statusMoved(ctx, tx, requestID)
}

// lockForAction reads a request for an operator's action in tx, as a
// *lethe.Error when it does not exist.
func lockForAction(ctx context.Context, tx store.Tx, id string) (*lethe.Request, error) {
	req, err := tx.LockRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "deletion request not found")
	}
	return req, err
}

func (p *Pipeline) actionAudit(ctx context.Context, tx store.Tx, requestID string, by lethe.Act, typ lethe.EventType, details map[string]string) error {
	if by.Actor == "" {
		by.Actor = lethe.ActorSystem
	}
	return tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: requestID, Time: p.now(), Actor: by.Actor, ActorID: by.ActorID, Type: typ, Details: details})
}

// resume moves a held request whose holds have all ended back to where it
// stopped and queues the job that carries it on.
func (p *Pipeline) resume(ctx context.Context, tx store.Tx, req *lethe.Request) (bool, error) {
	holds, err := tx.ListHolds(ctx, req.ID)
	if err != nil {
		return false, err
	}
	if len(active(holds)) > 0 || req.Status != lethe.StatusHeld {
		return false, nil
	}
	to := lethe.StatusRunning
	if req.Stage == lethe.StageResolve {
		to = lethe.StatusReceived
	}
	ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
		ID: req.ID, From: []lethe.Status{lethe.StatusHeld}, FromStage: []lethe.Stage{req.Stage},
		To: to, ToStage: req.Stage, At: p.now(),
	})
	if err != nil || !ok {
		return false, err
	}
	if err := p.Redrive(ctx, tx, req.ID); err != nil {
		return false, err
	}
	return true, p.statusMoved(ctx, tx, req.ID)
}

// act runs an operator's action on one request in one transaction and
// returns the request as it stands after it.
func (p *Pipeline) act(ctx context.Context, id string, fn func(tx store.Tx, req *lethe.Request) error) (*lethe.Request, error) {
	var out *lethe.Request
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		req, err := lockForAction(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := fn(tx, req); err != nil {
			return err
		}
		out, err = tx.GetRequest(ctx, id, store.Scope{All: true})
		return err
	})
	if err != nil {
		var le *lethe.Error
		if errors.As(err, &le) {
			return nil, le
		}
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return out, nil
}

// Approve lets a held request's erasure start: it ends its
// approval_required and ambiguous_subject holds; when no other hold
// (a waiting period, a legal hold) is left, the request goes on.
func (p *Pipeline) Approve(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error) {
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		if req.Status != lethe.StatusHeld {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request is %s; only a held request can be approved", req.Status)
		}
		if by.Note != "" {
			if err := p.checkRequestNote(ctx, tx, "note", by.Note, id); err != nil {
				return err
			}
		}
		n, err := tx.EndHolds(ctx, store.EndHoldsParams{RequestID: id, As: store.HoldApproved, By: by.ActorID, At: p.now(),
			Reasons: []lethe.HoldReason{lethe.HoldApprovalRequired, lethe.HoldAmbiguousSubject}})
		if err != nil {
			return err
		}
		if n == 0 {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request has no hold that needs approval (a waiting period ends by itself; a legal hold is released)")
		}
		details := map[string]string{}
		if by.Note != "" {
			details["note"] = by.Note
		}
		if err := p.actionAudit(ctx, tx, id, by, lethe.EventRequestApproved, details); err != nil {
			return err
		}
		_, err = p.resume(ctx, tx, req)
		return err
	})
}

// Deny refuses a request before its erasure started: it ends denied with
// reason (DRP's codes) as its outcome, through terminate like every end
// (receipt, identities dropped; never suppressed).
func (p *Pipeline) Deny(ctx context.Context, id string, reason lethe.DenyReason, by lethe.Act) (*lethe.Request, error) {
	if !reason.Valid() {
		return nil, lethe.Errorf(lethe.EINVALID, "reason must be one of %s", joinReasons())
	}
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		if !lethe.Cancelable(req.Status, req.Stage) {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request is %s; only a request whose erasure has not started can be denied", req.Status)
		}
		if err := p.checkRequestNote(ctx, tx, "note", by.Note, id); err != nil {
			return err
		}
		if _, err := tx.EndHolds(ctx, store.EndHoldsParams{RequestID: id, As: store.HoldDenied, By: by.ActorID, At: p.now()}); err != nil {
			return err
		}
		details := map[string]string{"reason": string(reason), "from": string(req.Status)}
		if by.Note != "" {
			details["note"] = by.Note
		}
		ok, err := p.Terminate(ctx, tx, req, nil, terminate.Ending{
			To: lethe.StatusDenied, Actor: by.Actor, ActorID: by.ActorID, At: p.now(),
			Details: details, Outcome: lethe.Outcome(reason),
		})
		if err != nil {
			return err
		}
		if !ok {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request changed meanwhile; read it again")
		}
		return nil
	})
}

func joinReasons() string {
	s := make([]string, len(lethe.DenyReasons))
	for i, r := range lethe.DenyReasons {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// checkRequestNote checks an operator's text against the request's own
// identities (read in tx) and anything that looks like personal data.
func (p *Pipeline) checkRequestNote(ctx context.Context, tx store.Tx, field, note, id string) error {
	ids, err := tx.RequestIdentities(ctx, id)
	if err != nil {
		return err
	}
	return checkNote(field, note, ids)
}

// PlaceLegalHold puts a legal hold (By.Note is its reason, required) on a
// request that has not ended, or on a failed one not yet closed (then it
// cannot be re-driven until released). A running request stops before
// its next erase attempt; attempts already under way finish.
func (p *Pipeline) PlaceLegalHold(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error) {
	if strings.TrimSpace(by.Note) == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "reason is required for a legal hold")
	}
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		if err := p.checkRequestNote(ctx, tx, "reason", by.Note, id); err != nil {
			return err
		}
		holds, err := tx.ListHolds(ctx, id)
		if err != nil {
			return err
		}
		for _, h := range active(holds) {
			if h.Reason == lethe.HoldLegal {
				return lethe.Errorf(lethe.ECONFLICT, "deletion request is already under a legal hold")
			}
		}
		switch {
		case req.Status == lethe.StatusReceived || req.Status == lethe.StatusRunning:
			ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
				ID: id, From: []lethe.Status{req.Status}, FromStage: []lethe.Stage{req.Stage},
				To: lethe.StatusHeld, ToStage: req.Stage, At: p.now(),
			})
			if err != nil {
				return err
			}
			if !ok {
				return lethe.Errorf(lethe.ECONFLICT, "deletion request changed meanwhile; read it again")
			}
		case req.Status == lethe.StatusHeld, lethe.Redrivable(req.Status, req.Stage):
		default:
			return lethe.Errorf(lethe.ECONFLICT, "deletion request is %s; a legal hold stops only a request that can still erase", req.Status)
		}
		h := store.Hold{RequestID: id, Reason: lethe.HoldLegal, Note: by.Note, PlacedAt: p.now(), PlacedBy: by.ActorID}
		return p.placeHoldsBy(ctx, tx, id, []store.Hold{h}, by)
	})
}

// placeHoldsBy is placeHolds for holds an operator placed.
func (p *Pipeline) placeHoldsBy(ctx context.Context, tx store.Tx, id string, holds []store.Hold, by lethe.Act) error {
	for _, h := range holds {
		if _, err := tx.PlaceHold(ctx, h); err != nil {
			return err
		}
		if err := p.actionAudit(ctx, tx, id, by, lethe.EventRequestHeld, map[string]string{
			"reason": string(h.Reason), "note": h.Note,
		}); err != nil {
			return err
		}
	}
	return p.statusMoved(ctx, tx, id)
}

// ReleaseLegalHold lifts a request's legal hold; when no other hold is
// left, the request goes on from where it stopped.
func (p *Pipeline) ReleaseLegalHold(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error) {
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		if by.Note != "" {
			if err := p.checkRequestNote(ctx, tx, "note", by.Note, id); err != nil {
				return err
			}
		}
		n, err := tx.EndHolds(ctx, store.EndHoldsParams{RequestID: id, As: store.HoldReleased, By: by.ActorID, At: p.now(),
			Reasons: []lethe.HoldReason{lethe.HoldLegal}})
		if err != nil {
			return err
		}
		if n == 0 {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request is not under a legal hold")
		}
		details := map[string]string{"reason": string(lethe.HoldLegal)}
		if by.Note != "" {
			details["note"] = by.Note
		}
		if err := p.actionAudit(ctx, tx, id, by, lethe.EventRequestReleased, details); err != nil {
			return err
		}
		_, err = p.resume(ctx, tx, req)
		return err
	})
}

// Holds returns a request's holds, active and ended.
func (p *Pipeline) Holds(ctx context.Context, id string) ([]store.Hold, error) {
	return p.st.ListHolds(ctx, id)
}

// holdBatch bounds one query of the hold sweep.
const holdBatch = 200

// SweepHolds releases every held request whose waiting period has ended
// (and that holds nothing else) and returns how many waiting periods it
// ended. It is what the periodic sweep runs; running it twice is harmless.
func (p *Pipeline) SweepHolds(ctx context.Context) (int, error) {
	n := 0
	for {
		ids, err := p.st.DueWaitingPeriods(ctx, p.now(), holdBatch)
		if err != nil {
			return n, fmt.Errorf("hold sweep: %w", err)
		}
		for _, id := range ids {
			err := p.st.InTx(ctx, func(tx store.Tx) error {
				req, err := tx.LockRequest(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				ended, err := tx.EndHolds(ctx, store.EndHoldsParams{RequestID: id, As: store.HoldExpired, At: p.now(),
					Reasons: []lethe.HoldReason{lethe.HoldWaitingPeriod}})
				if err != nil || ended == 0 {
					return err
				}
				n++
				if err := p.audit(ctx, tx, id, lethe.EventRequestReleased, map[string]string{"reason": string(lethe.HoldWaitingPeriod)}); err != nil {
					return err
				}
				_, err = p.resume(ctx, tx, req)
				return err
			})
			if err != nil {
				return n, fmt.Errorf("hold sweep: %w", err)
			}
		}
		if len(ids) < holdBatch {
			return n, nil
		}
	}
}

// onHold is erase's check before each attempt, in the attempt's
// transaction: a held request (a legal hold placed while it ran) attempts
// nothing more until it is released, when Redrive queues its tasks again.
func (p *Pipeline) onHold(ctx context.Context, tx store.Tx, requestID string) (bool, error) {
	req, err := tx.LockRequest(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return req.Status == lethe.StatusHeld, nil
}
