package store

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Extension is the one extension of a request's due date.
type Extension struct {
	RequestID   string
	PreviousDue time.Time
	Due         time.Time
	Reason      string
	Actor       lethe.Actor
	ActorID     string
	At          time.Time
}

// ExtendParams asks for a request's one extension: by Days, or until
// Until (exactly one of them), for Reason.
type ExtendParams struct {
	RequestID string
	Scope     Scope
	Days      int
	Until     time.Time
	Reason    string
}

// Extensions persists deadline extensions.
type Extensions interface {
	// ExtendRequest stores e and moves the request's due date to e.Due,
	// clearing its deadline warnings (they were about the old date), and
	// reports whether it did: false when the request was extended before.
	// The caller locks the request and checks the law's bound.
	ExtendRequest(ctx context.Context, e Extension) (bool, error)
	// GetExtension returns the request's extension or ErrNotFound.
	GetExtension(ctx context.Context, requestID string) (Extension, error)
}

// RegisterTarget is one target's outcome in the register.
type RegisterTarget struct {
	Target string          `json:"target"`
	State  lethe.TaskState `json:"state"`
}

// OperatorAction is an audit event caused by an operator or the admin, as
// the register lists it (no details: they may name what was held).
type OperatorAction struct {
	Time    time.Time       `json:"time"`
	Type    lethe.EventType `json:"type"`
	Actor   lethe.Actor     `json:"actor"`
	ActorID string          `json:"actor_id,omitempty"`
}

// RegisterEntry is one request as the register records it: no identity,
// no external id, no counts of what was held.
type RegisterEntry struct {
	RequestID    string
	ClientID     string
	Regulation   lethe.Regulation
	Status       lethe.Status
	Outcome      lethe.Outcome
	ReceivedAt   time.Time
	DueAt        time.Time
	ExtendedFrom time.Time // the due date before the extension; zero if none
	ClosedAt     time.Time // zero while open
	Targets      []RegisterTarget
	Actions      []OperatorAction
	// Archived reports that the request's details were purged and this
	// entry comes from the register table.
	Archived bool
}

// RegisterTimes is one request of RegisterActivity.
type RegisterTimes struct {
	ReceivedAt time.Time
	ClosedAt   time.Time // zero while open
	Status     lethe.Status
}

// RegisterFilter selects a page of the register, ordered by request id
// (which orders by receipt).
type RegisterFilter struct {
	Scope Scope
	// ReceivedFrom and ReceivedBefore bound the receipt time; zero: open.
	ReceivedFrom, ReceivedBefore time.Time
	Status                       lethe.Status // "" for any
	After                        string       // request id; "" from the start
	Limit                        int

	// The console's filters; zero values filter nothing.
	ClientID   string           // submitted by this client ("admin" for the admin's)
	Regulation lethe.Regulation // under this regulation
	Open       bool             // received, held or running
	DueBefore  time.Time        // due before this time
	// FailingTarget keeps requests whose task of this target failed.
	FailingTarget string
	// Newest orders the page newest first; After is then the request id
	// the page continues before.
	Newest bool
}

// Register is the request register: every request, live or purged, without
// identities, kept for retention.register after it closed.
type Register interface {
	// ArchiveRequest copies a closed request into the register table
	// (unchanged when it is there already) and reports whether the request
	// existed. Call it in the transaction that deletes the request's
	// details.
	ArchiveRequest(ctx context.Context, requestID string) (bool, error)
	// RegisterPage returns up to f.Limit entries after f.After, live
	// requests and archived ones alike.
	RegisterPage(ctx context.Context, f RegisterFilter) ([]RegisterEntry, error)
	// RegisterActivity returns when each request received since from was
	// received and closed and its status, live and archived alike, oldest
	// first: what a chart of the register needs, without reading tasks or
	// actions.
	RegisterActivity(ctx context.Context, from time.Time) ([]RegisterTimes, error)
	// FailingTasks counts, per target, the failed tasks of requests still
	// open or failed and not closed for good: the work an outage left.
	FailingTasks(ctx context.Context) (map[string]int, error)
	// PurgeRegister deletes up to limit register rows of requests closed
	// before cutoff and returns how many it deleted.
	PurgeRegister(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// ListReceipts returns up to limit receipts within scope, newest
	// request first, after the request id before ("" from the newest),
	// without their bodies.
	ListReceipts(ctx context.Context, scope Scope, before string, limit int) ([]Receipt, error)
}
