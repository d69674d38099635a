package store

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Session is a console sign-in, known by the SHA-256 of its cookie.
type Session struct {
	IDHash    string
	Operator  string
	CSRF      string // the token every form of the session carries
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ImportRow is one valid row of a CSV import: what intake needs to submit
// it.
type ImportRow struct {
	Line       int              `json:"line"` // in the uploaded file, for the report
	Identities []lethe.Identity `json:"identities"`
	Regulation lethe.Regulation `json:"regulation"`
	ExternalID string           `json:"external_id,omitempty"`
}

// Import is a console CSV import and its progress. Done rows were
// submitted (Created, Duplicates or Failed); the rest wait.
type Import struct {
	ID         string
	Operator   string
	State      string // "running" or "done"
	Total      int
	Done       int
	Created    int
	Duplicates int
	Failed     int
	CreatedAt  time.Time
	FinishedAt time.Time
}

// ImportProgress is what one batch of an import added.
type ImportProgress struct {
	Done, Created, Duplicates, Failed int
}

// Console persists the console's sessions and imports.
type Console interface {
	// CreateSession stores s.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the unexpired session of idHash whose operator is
	// still enabled, with the operator's current role; ErrNotFound
	// otherwise.
	GetSession(ctx context.Context, idHash string, now time.Time) (Session, Operator, error)
	// DeleteSession signs a session out (no error if it is gone).
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteExpiredSessions removes sessions expired before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// CreateImport stores a running import with its rows, sealed.
	CreateImport(ctx context.Context, imp Import, rows []ImportRow) error
	// GetImport returns an import's progress.
	GetImport(ctx context.Context, id string) (Import, error)
	// ListImports returns the newest imports first.
	ListImports(ctx context.Context, limit int) ([]Import, error)
	// LeaseImport takes the oldest running import whose lease has run out
	// (or is owner's) for owner until until, and returns it with its rows
	// not yet done; ErrNotFound when there is none.
	LeaseImport(ctx context.Context, owner string, now, until time.Time) (Import, []ImportRow, error)
	// AdvanceImport records a batch done under owner's lease, extending
	// the lease to until; at the last row the import ends (state done,
	// rows dropped). It reports false when owner no longer holds the lease.
	AdvanceImport(ctx context.Context, id, owner string, p ImportProgress, now, until time.Time) (bool, error)
}
