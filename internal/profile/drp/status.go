package drp

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/pipeline"
)

// DRP request statuses (section 3.02).
const (
	StatusOpen       = "open"
	StatusInProgress = "in_progress"
	StatusFulfilled  = "fulfilled"
	StatusRevoked    = "revoked"
	StatusDenied     = "denied"
	StatusExpired    = "expired"
)

// state is what an agent is told about a request.
type state struct {
	Status  string
	Reason  string
	Details string
	// Final marks DRP's final states, which carry expires_at.
	Final bool
}

// states maps each lethe status to the DRP state an agent sees: one line
// per lethe status. A status missing here is shown as in_progress (see
// stateOf), so a new lethe state is never reported as an end it is not.
var states = map[lethe.Status]state{
	// Registered and queued, not yet acted on by the business's systems.
	lethe.StatusReceived: {Status: StatusOpen},
	lethe.StatusRunning:  {Status: StatusInProgress},
	// Every target erased or confirmed holding nothing; see outcomes.
	lethe.StatusCompleted: {Status: StatusFulfilled, Final: true},
	// A failed request is not an answer to the user: the business must
	// still act on it, so the agent keeps seeing it in progress.
	lethe.StatusFailed:   {Status: StatusInProgress, Details: "processing stopped on an error; the business is resolving it"},
	lethe.StatusCanceled: {Status: StatusRevoked, Final: true},
}

// outcomes refine a completed request by what it found.
var outcomes = map[lethe.Outcome]state{
	lethe.OutcomeNoMatch: {Status: StatusDenied, Reason: "no_match", Details: "no data of this person was found", Final: true},
}

// stateOf returns the DRP state of r at now. A final state whose record
// period (keep) has passed is expired (section 3.02).
func stateOf(r *lethe.Request, now time.Time, keep time.Duration) (state, time.Time) {
	s, ok := states[r.Status]
	if !ok {
		s = state{Status: StatusInProgress}
	}
	if r.Status == lethe.StatusCompleted {
		if o, ok := outcomes[r.Outcome]; ok {
			s = o
		}
	}
	var expires time.Time
	if s.Final && !r.CompletedAt.IsZero() {
		expires = r.CompletedAt.Add(keep)
		if !now.Before(expires) {
			s = state{Status: StatusExpired, Final: true}
		}
	}
	return s, expires
}

// ExerciseStatus is the Exercise Status object (section 3.03), its
// members in the spec's order.
type ExerciseStatus struct {
	RequestID         string `json:"request_id"`
	ReceivedAt        string `json:"received_at,omitempty"`
	ExpectedBy        string `json:"expected_by,omitempty"`
	AgentRequestID    string `json:"agent_request_id,omitempty"`
	ProcessingDetails string `json:"processing_details,omitempty"`
	Status            string `json:"status"`
	Reason            string `json:"reason,omitempty"`
	ExpiresAt         string `json:"expires_at,omitempty"`
}

func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// StatusOf renders r as the agent sees it at now.
func StatusOf(r *lethe.Request, now time.Time, keep time.Duration) ExerciseStatus {
	s, expires := stateOf(r, now, keep)
	return ExerciseStatus{
		RequestID:         r.ID,
		ReceivedAt:        iso(r.ReceivedAt),
		ExpectedBy:        iso(r.DueAt),
		AgentRequestID:    r.ExternalID,
		ProcessingDetails: s.Details,
		Status:            s.Status,
		Reason:            s.Reason,
		ExpiresAt:         iso(expires),
	}
}

// Format is the profile's CallbackFormat: a status callback is the
// Exercise Status object (section 2.03) POSTed to the request's
// status_callback. DRP defines no signature for it.
type Format struct {
	// Keep is how long a final request's record is kept (expires_at).
	Keep time.Duration
}

var _ pipeline.CallbackFormat = Format{}

// Render implements pipeline.CallbackFormat.
func (f Format) Render(c pipeline.StatusChange) ([]byte, error) {
	return json.Marshal(StatusOf(c.Request, c.OccurredAt, f.keep()))
}

// Prepare implements pipeline.CallbackFormat: the body goes as rendered.
func (Format) Prepare(body []byte, _ string, _ http.Header) ([]byte, error) { return body, nil }

func (f Format) keep() time.Duration {
	if f.Keep <= 0 {
		return DefaultKeep
	}
	return f.Keep
}

// FormatName is the CallbackFormat of requests taken over DRP.
const FormatName = "drp"
