package pipeline

import (
	"context"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// closeRequest issues the receipt and drops the identities of a request
// that has just reached a terminal status, in the same transaction.
func (p *Pipeline) closeRequest(ctx context.Context, tx store.Tx, requestID string) error {
	return audit.CloseRequest(ctx, tx, p.cfg.Signer, p.now(), requestID)
}
