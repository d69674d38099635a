// Package suppression answers and edits the suppression list: the keyed
// hashes of the identities of completed requests (docs/suppression.md).
// The pipeline adds to it as requests complete; this package is what the
// API and the CLI share, so a check normalises identities exactly as
// intake does and every removal is audited the same way.
package suppression

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// MaxCheck bounds the identities of one check, like a submission's.
const MaxCheck = 100

// EventRemoved is the audit event type of a removal. Its details hold the
// identity's type and keyed hash, never the value.
const EventRemoved = lethe.EventSuppressionRemoved

// Check reports, per identity, whether it is suppressed within scope. The
// identities are normalised first (emails lower-cased, phones to E.164),
// so a check matches however the caller wrote them.
func Check(ctx context.Context, st store.Suppressions, scope store.Scope, ids []lethe.Identity) ([]bool, error) {
	if len(ids) == 0 {
		return nil, lethe.Errorf(lethe.EINVALID, "identities must list at least one identity")
	}
	if len(ids) > MaxCheck {
		return nil, lethe.Errorf(lethe.EINVALID, "identities may list at most %d identities", MaxCheck)
	}
	norm, err := normalize(ids)
	if err != nil {
		return nil, err
	}
	got, err := st.CheckSuppressions(ctx, scope, norm)
	if err != nil {
		return nil, fmt.Errorf("check suppressions: %w", err)
	}
	return got, nil
}

// Remove takes the identity off the list, for every client, and records
// who did it in the audit log in the same transaction. It returns how
// many entries it removed; removing an identity that is not listed is not
// an error and records nothing.
func Remove(ctx context.Context, st store.Store, id lethe.Identity, actor lethe.Actor, actorID string, now time.Time) (int, error) {
	norm, err := normalize([]lethe.Identity{id})
	if err != nil {
		return 0, err
	}
	var removed int
	err = st.InTx(ctx, func(tx store.Tx) error {
		hash, n, err := tx.RemoveSuppression(ctx, norm[0])
		if err != nil {
			return err
		}
		removed = n
		if n == 0 {
			return nil
		}
		return tx.AppendAudit(ctx, &lethe.AuditEvent{
			Time: now, Actor: actor, ActorID: actorID, Type: EventRemoved,
			Details: map[string]string{
				"identity_type": string(norm[0].Type),
				"hash":          hash,
				"entries":       strconv.Itoa(n),
			},
		})
	})
	if err != nil {
		return 0, fmt.Errorf("remove suppression: %w", err)
	}
	return removed, nil
}

func normalize(ids []lethe.Identity) ([]lethe.Identity, error) {
	out := make([]lethe.Identity, len(ids))
	for i, id := range ids {
		n, err := lethe.NormalizeIdentity(id)
		if err != nil {
			var le *lethe.Error
			if errors.As(err, &le) {
				return nil, lethe.Errorf(le.Code, "identities[%d]: %s", i, le.Message)
			}
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
