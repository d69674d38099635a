package console

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Actions are the operator actions on requests: *pipeline.Pipeline's,
// the same the native API calls. Each checks the request's state and the
// law's bounds itself and audits under the operator in ctx; the console
// only chooses which buttons to show.
type Actions interface {
	Approve(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	Deny(ctx context.Context, id string, reason lethe.DenyReason, by lethe.Act) (*lethe.Request, error)
	PlaceLegalHold(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	ReleaseLegalHold(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	RetryRequest(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	RetryTask(ctx context.Context, id, target string, by lethe.Act) (*lethe.Request, error)
	SkipTask(ctx context.Context, id, target string, by lethe.Act) (*lethe.Request, error)
	CloseRequest(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	Extend(ctx context.Context, x store.ExtendParams) (*lethe.Request, error)
	AttestTask(ctx context.Context, id, target string, report lethe.Report, by lethe.Act) (*lethe.Request, error)
	Holds(ctx context.Context, id string) ([]store.Hold, error)
}

var _ Actions = (*pipeline.Pipeline)(nil)

// Request actions, as the forms name them.
const (
	actApprove = "approve"
	actDeny    = "deny"
	actHold    = "hold"
	actRelease = "release"
	actRetry   = "retry"
	actClose   = "close"
	actExtend  = "extend"
	actCancel  = "cancel"
	actSkip    = "skip"
	actAttest  = "attest"
)

// allowedActions returns the request actions and, per target, the task
// actions that make sense in the request's state for this operator. The
// pipeline decides for real; a stale page's button gets its clear error.
func (c *Console) allowedActions(p operators.Principal, r *lethe.Request, tasks []lethe.Task, holds []store.Hold) ([]string, map[string][]string) {
	if c.opts.Actions == nil || !p.Can(operators.RoleReviewer) {
		return nil, nil
	}
	// A legal hold is placed or released; a request has one at most.
	legal := actHold
	for _, h := range holds {
		if h.Reason == lethe.HoldLegal && h.Active() {
			legal = actRelease
		}
	}
	var acts []string
	switch r.Status {
	case lethe.StatusHeld:
		acts = []string{actApprove, actDeny, legal, actExtend, actCancel}
		if legal == actRelease {
			acts = []string{legal, actDeny, actExtend, actCancel} // approval waits for the release
		}
	case lethe.StatusReceived, lethe.StatusRunning:
		acts = []string{legal, actExtend, actCancel}
	case lethe.StatusFailed:
		acts = []string{actRetry, actClose, legal}
	}
	perTask := map[string][]string{}
	for _, t := range tasks {
		switch t.State {
		case lethe.TaskFailed:
			perTask[t.Target] = []string{actRetry, actSkip}
		case lethe.TaskPending, lethe.TaskRunning:
			perTask[t.Target] = []string{actSkip}
			if c.targetKind(t.Target) == "manual" {
				perTask[t.Target] = []string{actAttest, actSkip}
			}
		}
	}
	return acts, perTask
}

// by is the operator in ctx with the form's note.
func by(r *http.Request) lethe.Act {
	actor, actorID := operators.Actor(r.Context())
	return lethe.Act{Actor: actor, ActorID: actorID, Note: strings.TrimSpace(r.PostForm.Get("note"))}
}

func (c *Console) handleAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, act := r.PathValue("id"), r.PathValue("action")
	if !validID(id) || c.opts.Actions == nil {
		c.fail(w, r, s, store.ErrNotFound)
		return
	}
	ctx, a := r.Context(), c.opts.Actions
	var err error
	switch act {
	case actApprove:
		_, err = a.Approve(ctx, id, by(r))
	case actDeny:
		reason := lethe.DenyReason(r.PostForm.Get("reason"))
		if !reason.Valid() {
			err = lethe.Errorf(lethe.EINVALID, "Choose a reason for the denial.")
			break
		}
		_, err = a.Deny(ctx, id, reason, by(r))
	case actHold:
		_, err = a.PlaceLegalHold(ctx, id, by(r))
	case actRelease:
		_, err = a.ReleaseLegalHold(ctx, id, by(r))
	case actRetry:
		_, err = a.RetryRequest(ctx, id, by(r))
	case actClose:
		_, err = a.CloseRequest(ctx, id, by(r))
	case actExtend:
		x := store.ExtendParams{RequestID: id, Scope: store.Scope{All: true}, Reason: r.PostForm.Get("note")}
		if v := r.PostForm.Get("days"); v != "" {
			if x.Days, err = strconv.Atoi(v); err != nil || x.Days <= 0 {
				err = lethe.Errorf(lethe.EINVALID, "Days must be a positive whole number.")
				break
			}
		}
		if v := r.PostForm.Get("until"); v != "" && x.Days == 0 {
			if x.Until, err = time.Parse("2006-01-02", v); err != nil {
				err = lethe.Errorf(lethe.EINVALID, "Until must be a date (YYYY-MM-DD).")
				break
			}
		}
		_, err = a.Extend(ctx, x)
	case actCancel:
		actor, actorID := operators.Actor(ctx)
		_, err = c.opts.Intake.Cancel(ctx, store.Scope{All: true}, id, actor, actorID)
	default:
		err = store.ErrNotFound
	}
	c.afterAction(w, r, s, id, act, err)
}

func (c *Console) handleTaskAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, target, act := r.PathValue("id"), r.PathValue("target"), r.PathValue("action")
	if !validID(id) || c.opts.Actions == nil || !c.knownTarget(target) {
		c.fail(w, r, s, store.ErrNotFound)
		return
	}
	var err error
	switch act {
	case actRetry:
		_, err = c.opts.Actions.RetryTask(r.Context(), id, target, by(r))
	case actSkip:
		_, err = c.opts.Actions.SkipTask(r.Context(), id, target, by(r))
	case actAttest:
		var report lethe.Report
		if report, err = parseCounts(r.PostForm.Get("counts")); err == nil {
			_, err = c.opts.Actions.AttestTask(r.Context(), id, target, report, by(r))
		}
	default:
		err = store.ErrNotFound
	}
	c.afterAction(w, r, s, id, act, err)
}

func (c *Console) knownTarget(name string) bool { return c.targetKind(name) != "" }

func (c *Console) targetKind(name string) string {
	for _, t := range c.opts.Targets {
		if t.Name == name {
			return t.Kind
		}
	}
	return ""
}

// parseCounts reads an attestation's "object: count" lines.
func parseCounts(text string) (lethe.Report, error) {
	var rep lethe.Report
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		obj, n, ok := strings.Cut(line, ":")
		rows, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if !ok || err != nil || rows < 0 || strings.TrimSpace(obj) == "" {
			return rep, lethe.Errorf(lethe.EINVALID, "Write what was erased as one \"object: count\" per line.")
		}
		rep.Items = append(rep.Items, lethe.ReportItem{Object: strings.TrimSpace(obj), Action: lethe.ActionDelete, Rows: rows})
	}
	if len(rep.Items) == 0 {
		return rep, lethe.Errorf(lethe.EINVALID, "Write what was erased as one \"object: count\" per line.")
	}
	return rep, nil
}

// afterAction shows a refused action's reason on an error page, and
// sends a done one back to the request page (POST, redirect, GET: a
// reload does not repeat it).
func (c *Console) afterAction(w http.ResponseWriter, r *http.Request, s *session, id, act string, err error) {
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, Prefix+"requests/"+id+"?done="+act, http.StatusSeeOther)
}

// actionFlash is the confirmation shown after an action; unknown values
// show nothing, so the query string cannot put words on the page.
func actionFlash(done string) string {
	switch done {
	case actApprove:
		return "Approved: erasure starts."
	case actDeny:
		return "Denied: the request has ended with a receipt."
	case actHold:
		return "Legal hold placed."
	case actRelease:
		return "Hold released."
	case actRetry:
		return "Retry queued."
	case actClose:
		return "Closed as failed for good."
	case actExtend:
		return "Due date extended; the partner is told."
	case actCancel:
		return "Canceled."
	case actSkip:
		return "Task skipped; the receipt will say why."
	case actAttest:
		return "Attested: the receipt names you for this target."
	}
	return ""
}
