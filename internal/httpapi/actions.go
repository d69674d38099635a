package httpapi

import (
	"context"
	"net/http"
	"regexp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Actions are what operators do to requests: review holds, re-drive
// failures, attest manual targets. The pipeline implements it; every
// error it returns as *lethe.Error is shown, anything else is internal.
type Actions interface {
	Approve(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	Deny(ctx context.Context, id string, reason lethe.DenyReason, by lethe.Act) (*lethe.Request, error)
	PlaceLegalHold(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	ReleaseLegalHold(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	RetryRequest(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	CloseRequest(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error)
	RetryTask(ctx context.Context, id, target string, by lethe.Act) (*lethe.Request, error)
	SkipTask(ctx context.Context, id, target string, by lethe.Act) (*lethe.Request, error)
	AttestTask(ctx context.Context, id, target string, report lethe.Report, by lethe.Act) (*lethe.Request, error)
	RetryTarget(ctx context.Context, target string, by lethe.Act) (store.BulkRetry, error)
	GetBulkRetry(ctx context.Context, id string) (store.BulkRetry, error)
	Holds(ctx context.Context, id string) ([]store.Hold, error)
}

// actionRoutes are the operator actions. They are routed whether or not
// the server has Actions (the document lists them either way); without
// Actions they answer 404.
func (s *Server) actionRoutes(a Actions) []route {
	h := actionHandlers{s: s, a: a}
	return []route{
		{"POST /v1/deletion-requests/{id}/approve", s.authed(operators.RoleReviewer, h.request(func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			return a.Approve(r.Context(), id, by)
		}))},
		{"POST /v1/deletion-requests/{id}/deny", s.authed(operators.RoleReviewer, h.request(func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			return a.Deny(r.Context(), id, lethe.DenyReason(b.Reason), by)
		}))},
		{"POST /v1/deletion-requests/{id}/hold", s.authed(operators.RoleReviewer, h.request(func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			by.Note = b.Reason
			return a.PlaceLegalHold(r.Context(), id, by)
		}))},
		{"POST /v1/deletion-requests/{id}/release", s.authed(operators.RoleReviewer, h.request(func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			return a.ReleaseLegalHold(r.Context(), id, by)
		}))},
		{"POST /v1/deletion-requests/{id}/retry", s.authed(operators.RoleReviewer, h.request(func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			return a.RetryRequest(r.Context(), id, by)
		}))},
		{"POST /v1/deletion-requests/{id}/close", s.authed(operators.RoleReviewer, h.request(func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			return a.CloseRequest(r.Context(), id, by)
		}))},
		{"GET /v1/deletion-requests/{id}/holds", s.authed(operators.RoleViewer, h.holds)},
		{"POST /v1/deletion-requests/{id}/tasks/{target}/retry", s.authed(operators.RoleReviewer, h.task(func(r *http.Request, id, target string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			return a.RetryTask(r.Context(), id, target, by)
		}))},
		{"POST /v1/deletion-requests/{id}/tasks/{target}/skip", s.authed(operators.RoleReviewer, h.task(func(r *http.Request, id, target string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			by.Note = b.Reason
			return a.SkipTask(r.Context(), id, target, by)
		}))},
		{"POST /v1/deletion-requests/{id}/tasks/{target}/attest", s.authed(operators.RoleReviewer, h.task(func(r *http.Request, id, target string, b actionBody, by lethe.Act) (*lethe.Request, error) {
			rep := lethe.Report{Items: make([]lethe.ReportItem, len(b.Items))}
			for i, it := range b.Items {
				rep.Items[i] = lethe.ReportItem{Object: it.Object, Action: it.Action, Rows: it.Rows}
			}
			return a.AttestTask(r.Context(), id, target, rep, by)
		}))},
		{"POST /v1/tasks/retry", s.authed(operators.RoleReviewer, h.bulkRetry)},
		{"GET /v1/tasks/retry/{id}", s.authed(operators.RoleViewer, h.getBulkRetry)},
	}
}

type actionHandlers struct {
	s *Server
	a Actions
}

// actionBody is every action's body; each action reads the fields it
// takes and the others must be absent (strict decoding refuses unknown
// ones, not unused ones).
type actionBody struct {
	// Reason: the deny code, the legal hold's reason, the skip's reason.
	Reason string `json:"reason,omitempty"`
	// Note: free text kept in the audit log; never an identity.
	Note  string           `json:"note,omitempty"`
	Items []attestItemBody `json:"items,omitempty"`
}

type attestItemBody struct {
	Object string       `json:"object"`
	Action lethe.Action `json:"action,omitempty"`
	Rows   int64        `json:"rows"`
}

// reviewer resolves who acts, refusing anyone who may not: a partner's
// client token, or an operator whose role is below reviewer.
func reviewer(r *http.Request, p auth.Principal) (lethe.Act, error) {
	op, ok := operators.FromContext(r.Context())
	if !p.Admin || !ok || !op.Can(operators.RoleReviewer) {
		return lethe.Act{}, lethe.Errorf(lethe.EFORBIDDEN, "acting on requests needs an operator with the reviewer role")
	}
	actor, name := operators.Actor(r.Context())
	return lethe.Act{Actor: actor, ActorID: name}, nil
}

// decodeAction reads an action's optional body: none at all is {}.
func (s *Server) decodeAction(r *http.Request, b *actionBody) error {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	return request.DecodeJSON(r, s.maxBody, b)
}

// targetName is what a target's name may look like (the data map's rule);
// anything else names no task.
var targetName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

func (h actionHandlers) begin(w http.ResponseWriter, r *http.Request, p auth.Principal) (string, actionBody, lethe.Act, bool) {
	var b actionBody
	if h.a == nil {
		h.s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "no such route"))
		return "", b, lethe.Act{}, false
	}
	by, err := reviewer(r, p)
	if err != nil {
		h.s.writeError(w, r, err)
		return "", b, by, false
	}
	id, ok := pathRequestID(r)
	if !ok {
		h.s.writeError(w, r, errRequestNotFound())
		return "", b, by, false
	}
	if err := h.s.decodeAction(r, &b); err != nil {
		h.s.writeError(w, r, err)
		return "", b, by, false
	}
	by.Note = b.Note
	return id, b, by, true
}

func (h actionHandlers) request(do func(r *http.Request, id string, b actionBody, by lethe.Act) (*lethe.Request, error)) func(http.ResponseWriter, *http.Request, auth.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		id, b, by, ok := h.begin(w, r, p)
		if !ok {
			return
		}
		req, err := do(r, id, b, by)
		if err != nil {
			h.s.writeError(w, r, err)
			return
		}
		h.s.writeJSON(w, r, http.StatusOK, newRequestView(req))
	}
}

func (h actionHandlers) task(do func(r *http.Request, id, target string, b actionBody, by lethe.Act) (*lethe.Request, error)) func(http.ResponseWriter, *http.Request, auth.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		id, b, by, ok := h.begin(w, r, p)
		if !ok {
			return
		}
		target := r.PathValue("target")
		if !targetName.MatchString(target) {
			h.s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "deletion request has no such task"))
			return
		}
		req, err := do(r, id, target, b, by)
		if err != nil {
			h.s.writeError(w, r, err)
			return
		}
		h.s.writeJSON(w, r, http.StatusOK, newRequestView(req))
	}
}

// holdView is one hold as the API shows it.
type holdView struct {
	Reason   lethe.HoldReason `json:"reason"`
	Note     string           `json:"note,omitempty"`
	Until    string           `json:"until,omitempty"`
	PlacedAt string           `json:"placed_at"`
	PlacedBy string           `json:"placed_by,omitempty"`
	EndedAt  string           `json:"ended_at,omitempty"`
	EndedAs  string           `json:"ended_as,omitempty"`
	EndedBy  string           `json:"ended_by,omitempty"`
}

// holds answers a request's holds, active and ended, to any operator
// (viewers included): they say why a request waits.
func (h actionHandlers) holds(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if h.a == nil {
		h.s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "no such route"))
		return
	}
	id, ok := pathRequestID(r)
	if !ok || !p.Admin {
		h.s.writeError(w, r, errRequestNotFound())
		return
	}
	if _, err := h.s.store.GetRequest(r.Context(), id, p.Scope()); err != nil {
		h.s.writeError(w, r, errRequestNotFound())
		return
	}
	hs, err := h.a.Holds(r.Context(), id)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	out := struct {
		Data []holdView `json:"data"`
	}{Data: make([]holdView, len(hs))}
	for i, x := range hs {
		out.Data[i] = holdView{Reason: x.Reason, Note: x.Note, Until: formatTime(x.Until), PlacedAt: formatTime(x.PlacedAt),
			PlacedBy: x.PlacedBy, EndedAt: formatTime(x.EndedAt), EndedAs: string(x.EndedAs), EndedBy: x.EndedBy}
	}
	h.s.writeJSON(w, r, http.StatusOK, out)
}

type bulkRetryBody struct {
	Target string `json:"target"`
	Failed bool   `json:"failed"`
}

type bulkRetryView struct {
	ID         string `json:"id"`
	Target     string `json:"target"`
	Cutoff     string `json:"cutoff"`
	Retried    int    `json:"retried"`
	FinishedAt string `json:"finished_at,omitempty"`
}

func newBulkRetryView(b store.BulkRetry) bulkRetryView {
	return bulkRetryView{ID: b.ID, Target: b.Target, Cutoff: formatTime(b.Cutoff), Retried: b.Retried, FinishedAt: formatTime(b.FinishedAt)}
}

// bulkRetry asks for every task of one target that has failed by now to
// be retried: 202 with the bulk retry, which a job works through.
func (h actionHandlers) bulkRetry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if h.a == nil {
		h.s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "no such route"))
		return
	}
	by, err := reviewer(r, p)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var b bulkRetryBody
	if err := request.DecodeJSON(r, h.s.maxBody, &b); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if !b.Failed {
		h.s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "failed must be true: only failed tasks are retried in bulk"))
		return
	}
	if !targetName.MatchString(b.Target) {
		h.s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "target must name a target of the data map"))
		return
	}
	got, err := h.a.RetryTarget(r.Context(), b.Target, by)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	h.s.writeJSON(w, r, http.StatusAccepted, newBulkRetryView(got))
}

func (h actionHandlers) getBulkRetry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if h.a == nil || !p.Admin {
		h.s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "bulk retry not found"))
		return
	}
	got, err := h.a.GetBulkRetry(r.Context(), r.PathValue("id"))
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, newBulkRetryView(got))
}
