package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Extender extends a request's due date once, within the law's bound, for
// the operator in ctx; *pipeline.Pipeline is one.
type Extender interface {
	Extend(ctx context.Context, x store.ExtendParams) (*lethe.Request, error)
}

// extendBody is the body of POST /v1/deletion-requests/{id}/extend: a
// reason and either days (added to the current due date) or until (an
// RFC 3339 time or a YYYY-MM-DD date, midnight UTC).
type extendBody struct {
	Reason string `json:"reason"`
	Days   int    `json:"days,omitempty"`
	Until  string `json:"until,omitempty"`
}

// extensionView is a request's extension as GET shows it; By (the
// operator) only to operators.
type extensionView struct {
	PreviousDueAt string `json:"previous_due_at"`
	DueAt         string `json:"due_at"`
	Reason        string `json:"reason"`
	ExtendedAt    string `json:"extended_at"`
	By            string `json:"by,omitempty"`
}

func newExtensionView(e store.Extension) *extensionView {
	by := e.ActorID
	if by == "" {
		by = string(e.Actor)
	}
	return &extensionView{
		PreviousDueAt: formatTime(e.PreviousDue), DueAt: formatTime(e.Due), Reason: e.Reason,
		ExtendedAt: formatTime(e.At), By: by,
	}
}

// extensionView reads the request's extension; nil when it has none.
func (s *Server) extensionView(ctx context.Context, requestID string) (*extensionView, error) {
	e, err := s.store.GetExtension(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get extension: %w", err)
	}
	return newExtensionView(e), nil
}

// handleExtend extends an open request's due date once (operators with the
// reviewer role): 200 with the request, 400 beyond the law's bound or for
// a bad body, 409 when it was extended already or has closed.
func (s *Server) handleExtend(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !s.operatorOnly(w, r, p) {
		return
	}
	if s.extend == nil {
		s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "no such route"))
		return
	}
	id, ok := pathRequestID(r)
	if !ok {
		s.writeError(w, r, errRequestNotFound())
		return
	}
	var body extendBody
	if err := request.DecodeJSON(r, s.maxBody, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	x := store.ExtendParams{RequestID: id, Scope: p.Scope(), Days: body.Days, Reason: body.Reason}
	if body.Until != "" {
		t, err := parseDateOrTime(body.Until)
		if err != nil {
			s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "until must be an RFC 3339 time or a YYYY-MM-DD date"))
			return
		}
		x.Until = t
	}
	if _, err := s.extend.Extend(r.Context(), x); err != nil {
		s.writeError(w, r, err)
		return
	}
	req, err := s.store.GetRequest(r.Context(), id, p.Scope())
	if err != nil {
		s.writeError(w, r, fmt.Errorf("read extended request: %w", err))
		return
	}
	s.writeRequestDetail(w, r, req, p)
}

// parseDateOrTime reads an RFC 3339 time or a YYYY-MM-DD date (midnight
// UTC).
func parseDateOrTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	return time.Parse(time.DateOnly, v)
}
