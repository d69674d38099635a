package opendsr

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/pipeline"
)

// OpenDSR request statuses (section 8).
const (
	StatusPending    = "pending"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusCancelled  = "cancelled"
)

// statuses maps each lethe status to the OpenDSR status a controller
// sees: one line per lethe status. A status missing here is shown as
// in_progress (statusOf), never as an end it is not.
var statuses = map[lethe.Status]string{
	lethe.StatusReceived:  StatusPending,
	lethe.StatusRunning:   StatusInProgress,
	lethe.StatusCompleted: StatusCompleted,
	// OpenDSR has no failed status: the request is still the
	// processor's to finish.
	lethe.StatusFailed:   StatusInProgress,
	lethe.StatusCanceled: StatusCancelled,
	// Operator control's states, named by their values so that this
	// table needs no change when they arrive. A held request waits for
	// the processor to decide, not yet acted on; a denied one will not be
	// fulfilled, which OpenDSR can only say as cancelled.
	lethe.Status("held"):   StatusPending,
	lethe.Status("denied"): StatusCancelled,
}

func statusOf(r *lethe.Request) string {
	if s, ok := statuses[r.Status]; ok {
		return s
	}
	return StatusInProgress
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// APIVersion is the version of the API lethe serves.
const APIVersion = "2.0"

// StatusResponse is section 8.3's body, members in section 8.4's order.
type StatusResponse struct {
	ControllerID           string `json:"controller_id"`
	ExpectedCompletionTime string `json:"expected_completion_time"`
	SubjectRequestID       string `json:"subject_request_id"`
	RequestStatus          string `json:"request_status"`
	APIVersion             string `json:"api_version"`
}

// Callback is section 8.6's body, members in section 8.7's order.
type Callback struct {
	ControllerID           string `json:"controller_id"`
	ExpectedCompletionTime string `json:"expected_completion_time"`
	StatusCallbackURL      string `json:"status_callback_url"`
	SubjectRequestID       string `json:"subject_request_id"`
	RequestStatus          string `json:"request_status"`
}

// Format is the profile's CallbackFormat. The stored body leaves
// status_callback_url empty (the URL is sealed apart from it); Prepare
// fills it in and signs the bytes sent.
type Format struct {
	Signer *Signer
	Domain string
}

var _ pipeline.CallbackFormat = Format{}

// FormatName is the CallbackFormat of requests taken over OpenDSR.
const FormatName = "opendsr"

// Render implements pipeline.CallbackFormat.
func (f Format) Render(c pipeline.StatusChange) ([]byte, error) {
	r := c.Request
	return json.Marshal(Callback{
		ControllerID: r.ClientID, ExpectedCompletionTime: rfc3339(r.DueAt),
		SubjectRequestID: r.ExternalID, RequestStatus: statusOf(r),
	})
}

// Prepare implements pipeline.CallbackFormat.
func (f Format) Prepare(body []byte, url string, h http.Header) ([]byte, error) {
	var c Callback
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	c.StatusCallbackURL = url
	out, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	sig, err := f.Signer.Sign(out)
	if err != nil {
		return nil, err
	}
	h.Set(HeaderDomain, f.Domain)
	h.Set(HeaderSignature, sig)
	return out, nil
}

// Headers of signed answers and callbacks (sections 7.4, 8.3, 8.6).
const (
	HeaderDomain    = "X-OpenDSR-Processor-Domain"
	HeaderSignature = "X-OpenDSR-Signature"
)
