package intake

import (
	"context"

	"github.com/lethe-privacy/lethe/internal/store"
)

// StatusNotifier stores and queues a request's status callback inside the
// transaction that changed its status. The pipeline implements it; an
// Enqueuer that does not (a test double) simply sends no callbacks.
type StatusNotifier interface {
	NotifyStatus(ctx context.Context, tx store.Tx, requestID string) error
}

// notifyStatus tells the request's callback_url, if any, about the status
// it has now in tx.
func (s *Service) notifyStatus(ctx context.Context, tx store.Tx, requestID string) error {
	n, ok := s.queue.(StatusNotifier)
	if !ok {
		return nil
	}
	return n.NotifyStatus(ctx, tx, requestID)
}
