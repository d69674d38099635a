package connector

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Some targets only accept an erasure ("202 Accepted, working on it") and
// finish it later. Their connectors answer Erase with a Pending error; the
// pipeline then keeps the task running, stores the checkpoint, and calls
// Erase again after the delay with the checkpoint in Subject.Checkpoint,
// until Erase returns nil (done), another error, or the task's deadline
// passes. A pending answer is never counted as done, nor as a failed
// attempt.

// PendingError is Erase's answer while the target has not confirmed the
// erasure yet. Construct it with Pending; the fields are exported so the
// pipeline (and tests) can read them with errors.As.
type PendingError struct {
	// After is how long to wait before calling Erase again. The pipeline
	// clamps it to its minimum wait and to the task's deadline.
	After time.Duration
	// Checkpoint replaces the task's stored checkpoint and comes back in
	// Subject.Checkpoint on the next call; return the one you were given
	// to keep it. It is sealed at rest, may be at most MaxCheckpointLen
	// bytes, and is never logged.
	Checkpoint string
	// Reason says what the target is waiting for ("accepted, polling the
	// check URL", "throttled: 429"), for the task's last_error while it
	// waits. No identity values.
	Reason string
}

// MaxCheckpointLen bounds a checkpoint: it is a reference (a URL, an id),
// not a place to keep data.
const MaxCheckpointLen = 4096

// Pending returns a *PendingError asking to be called again after the delay
// with checkpoint.
func Pending(after time.Duration, checkpoint string) error {
	return &PendingError{After: after, Checkpoint: checkpoint}
}

func (e *PendingError) Error() string {
	if e.Reason != "" {
		return "erasure pending: " + e.Reason
	}
	return fmt.Sprintf("erasure pending: target has not confirmed it yet (next check in %s)", e.After)
}

// IsPending reports whether err is (or wraps) a *PendingError.
func IsPending(err error) bool {
	var p *PendingError
	return errors.As(err, &p)
}

// Completer is implemented by connectors whose targets may confirm an
// erasure by calling lethe back instead of (or as well as) being polled:
// POST /v1/tasks/{token}/complete, where the token is the one given to
// Erase in Subject.CallbackToken.
type Completer interface {
	// AcceptsCallbacks reports whether this target is configured to call
	// back; only then does the pipeline issue callback tokens for it.
	AcceptsCallbacks() bool
	// VerifyCompletion authenticates a callback (its headers and raw body)
	// with the target's own secret and decodes its outcome. It returns a
	// *lethe.Error (EUNAUTH for a bad signature, EINVALID for a bad body)
	// whose message is safe to show the caller.
	VerifyCompletion(h http.Header, body []byte) (Completion, error)
}

// Completion is what a target reports when it calls back.
type Completion struct {
	// Failed is true when the target reports that it could not erase; the
	// task then fails with Reason. Otherwise the erasure is done.
	Failed bool
	Reason string // no identity values; the pipeline redacts them anyway
	// Report is what the target erased (counts per object).
	Report lethe.Report
}

// Deadliner is implemented by connectors that say how long the pipeline
// waits for their target to confirm an erasure, counted from the task's
// first attempt. Without it (or when it returns 0) the pipeline's default
// applies. Past the deadline the task fails.
type Deadliner interface {
	ConfirmWithin() time.Duration
}
