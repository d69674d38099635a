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
	// Operator control's states, named by their values so that this
	// table needs no change when they arrive: a held request waits for
	// the business to decide; a denied one ends with the reason code the
	// operator chose, which lethe keeps as the outcome (see denyReason).
	lethe.Status("held"):   {Status: StatusInProgress, Details: "the business is reviewing the request before acting on it"},
	lethe.Status("denied"): {Status: StatusDenied, Final: true},
}

// denyReasons are section 3.02's reasons for denied; a denied request
// whose outcome is none of them is denied for "other".
var denyReasons = map[string]bool{
	"suspected_fraud": true, "insuf_verification": true, "no_match": true, "claim_not_covered": true,
	"outside_jurisdiction": true, "too_many_requests": true, "other": true,
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
	if s.Status == StatusDenied && s.Reason == "" {
		s.Reason = "other"
		if denyReasons[string(r.Outcome)] {
			s.Reason = string(r.Outcome)
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

// StatusOf renders r as the agent sees it at now. extension is the
// reason the business gave for extending the request's due date, "" when
// it was not: section 3.08 asks processing_details to say it while the
// request is open.
func StatusOf(r *lethe.Request, now time.Time, keep time.Duration, extension string) ExerciseStatus {
	s, expires := stateOf(r, now, keep)
	if extension != "" && !s.Final {
		s.Details = joinDetails("the business extended the deadline: "+extension, s.Details)
	}
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

// Render implements pipeline.CallbackFormat. An extension's event is the
// request's status with its new expected_by and the reason (section 3.08:
// the agent must be told).
func (f Format) Render(c pipeline.StatusChange) ([]byte, error) {
	ext := ""
	if c.Extension != nil {
		ext = c.Extension.Reason
	}
	return json.Marshal(StatusOf(c.Request, c.OccurredAt, f.keep(), ext))
}

func joinDetails(a, b string) string {
	if b == "" {
		return a
	}
	return a + "; " + b
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
