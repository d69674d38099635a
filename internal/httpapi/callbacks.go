package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/store"
)

// requestDetail is GET /v1/deletion-requests/{id}: the request view with
// its callback events and their delivery attempts.
type requestDetail struct {
	requestView
	Callbacks []callbackView `json:"callbacks"`
}

// callbackView shows an event's delivery, not its target: the URL is the
// submitter's own and the body is what the receiver got.
type callbackView struct {
	ID        string                `json:"id"`
	Sequence  int                   `json:"sequence"`
	Status    lethe.Status          `json:"status"`
	State     store.CallbackState   `json:"state"`
	CreatedAt string                `json:"created_at"`
	EndedAt   string                `json:"ended_at,omitempty"`
	Attempts  []callbackAttemptView `json:"attempts"`
}

// deliveryFailed is the one error an attempt without an answer shows.
const deliveryFailed = "delivery_failed"

type callbackAttemptView struct {
	Attempt    int    `json:"attempt"`
	Time       string `json:"time"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
}

func (s *Server) newRequestDetail(ctx context.Context, req *lethe.Request, p auth.Principal) (requestDetail, error) {
	es, err := s.store.ListCallbackEvents(ctx, req.ID)
	if err != nil {
		return requestDetail{}, fmt.Errorf("list callbacks: %w", err)
	}
	v := newRequestView(req)
	if v.Extension, err = s.extensionView(ctx, req.ID); err != nil {
		return requestDetail{}, err
	}
	if !p.Admin {
		// Reminders to a manual target's owner are the company's own
		// traffic, not the partner's callbacks.
		es = slices.DeleteFunc(es, func(e store.CallbackEvent) bool { return e.Format == store.CallbackFormatReminder })
	}
	d := requestDetail{requestView: viewFor(p, v), Callbacks: make([]callbackView, len(es))}
	for i, e := range es {
		cv := callbackView{
			ID: e.ID, Sequence: e.Seq, Status: e.Status, State: e.State,
			CreatedAt: formatTime(e.CreatedAt), EndedAt: formatTime(e.EndedAt),
			Attempts: make([]callbackAttemptView, len(e.Attempts)),
		}
		for j, a := range e.Attempts {
			cv.Attempts[j] = callbackAttemptView{
				Attempt: a.Attempt, Time: formatTime(a.Time), HTTPStatus: a.HTTPStatus, Error: a.Error,
				DurationMS: a.Duration.Milliseconds(),
			}
			if a.Error != "" && a.HTTPStatus == 0 {
				// No answer came: whether the address refused, timed out,
				// did not resolve or was forbidden is network-level detail
				// that would make the callback a port scanner for whoever
				// chose the URL, and so is how long the attempt took.
				cv.Attempts[j].Error, cv.Attempts[j].DurationMS = deliveryFailed, 0
			}
		}
		d.Callbacks[i] = cv
	}
	return d, nil
}

// writeRequestDetail answers a request with its callbacks.
func (s *Server) writeRequestDetail(w http.ResponseWriter, r *http.Request, req *lethe.Request, p auth.Principal) {
	d, err := s.newRequestDetail(r.Context(), req, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, d)
}
