package store

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe"
)

// CallbackState is where the delivery of one callback event stands.
type CallbackState string

const (
	// CallbackPending: not yet accepted by the receiver; retries go on.
	CallbackPending CallbackState = "pending"
	// CallbackDelivered: the receiver answered 2xx to one attempt.
	CallbackDelivered CallbackState = "delivered"
	// CallbackAbandoned: the retry window ran out (or the URL is refused
	// by policy); no further attempt is made.
	CallbackAbandoned CallbackState = "abandoned"
)

// CallbackFormatReminder is the Format of reminder events: a manual
// target's task waiting for its owner (not a status change, not for the
// request's submitter). They go to the target's remind_url, are signed
// like the admin's callbacks, and take negative Seqs (NextReminderSeq)
// so a partner's sequence of status events has no gaps.
const CallbackFormatReminder = "lethe.reminder"

// CallbackEvent is one status change to tell a request's callback_url
// about. Body is the exact JSON sent; it never holds identity values.
type CallbackEvent struct {
	ID        string // UUIDv7, the receiver's deduplication key
	RequestID string
	Seq       int // 1, 2, ... per request (NextCallbackSeq)
	Status    lethe.Status
	ClientID  string // whose HMAC secret signs it; "" for the admin
	URL       string // sealed at rest; "" once the event has ended
	Body      []byte
	// Format is the request's CallbackFormat when the event was
	// rendered: it names who finishes and signs Body at delivery.
	Format    string
	State     CallbackState
	CreatedAt time.Time
	EndedAt   time.Time // zero while pending

	Attempts []CallbackAttempt // filled by ListCallbackEvents
}

// CallbackAttempt is one delivery attempt. No response body is kept.
type CallbackAttempt struct {
	Attempt    int // 1-based; assigned by the store
	Time       time.Time
	Duration   time.Duration // stored with microsecond precision
	HTTPStatus int           // 0 when no response came
	Error      string        // an error class ("timeout", "http_status", ...), "" on success
}

// StatusEvents persists the outbound status events of requests (sent to
// their callback_url) and their delivery attempts.
type StatusEvents interface {
	// NextCallbackSeq returns the Seq the request's next event must have:
	// the body carries it, so the caller needs it before the insert.
	NextCallbackSeq(ctx context.Context, requestID string) (int, error)
	// NextReminderSeq returns the Seq of the request's next reminder
	// event (CallbackFormatReminder): -1, -2, ...
	NextReminderSeq(ctx context.Context, requestID string) (int, error)
	// CreateCallbackEvent inserts e in state pending, normalising
	// e.CreatedAt. ID, RequestID, Seq, Status, URL, Body and CreatedAt must
	// be set; ErrConflict when the id or (RequestID, Seq) is taken.
	CreateCallbackEvent(ctx context.Context, e *CallbackEvent) error
	// GetCallbackEvent returns the event without its attempts, or
	// ErrNotFound.
	GetCallbackEvent(ctx context.Context, id string) (*CallbackEvent, error)
	// ListCallbackEvents returns a request's events by Seq, with attempts.
	ListCallbackEvents(ctx context.Context, requestID string) ([]CallbackEvent, error)
	// RecordCallbackAttempt appends an attempt to a pending event and
	// returns the number it got; ErrNotFound when the event is missing and
	// ErrConflict when it has already ended.
	RecordCallbackAttempt(ctx context.Context, eventID string, a CallbackAttempt) (int, error)
	// EndCallbackEvent moves a pending event to delivered or abandoned,
	// dropping its URL, and reports whether it did.
	EndCallbackEvent(ctx context.Context, eventID string, state CallbackState, at time.Time) (bool, error)
}
