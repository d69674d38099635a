package store

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Suppressions keeps the suppression list: keyed hashes of the identities
// of completed requests, so that the deployment can tell "this person asked
// to be erased" without keeping who they are.
type Suppressions interface {
	// SuppressRequestIdentities adds the keyed hash of every identity of
	// the request (given and linked, values still present) under the
	// request's client and returns how many identities it hashed. Run it
	// before the identity values are dropped; adding twice is harmless.
	SuppressRequestIdentities(ctx context.Context, requestID string, at time.Time) (int, error)
	// CheckSuppressions reports, per identity (normalised by the caller),
	// whether it is on the list within scope: a client sees only entries
	// its own requests added, the admin sees all.
	CheckSuppressions(ctx context.Context, scope Scope, ids []lethe.Identity) ([]bool, error)
	// RemoveSuppression removes every entry of the identity (all clients)
	// and returns its hash, for the audit event, and how many it removed.
	RemoveSuppression(ctx context.Context, id lethe.Identity) (hash string, removed int, err error)
}
