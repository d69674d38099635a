package sqlstore

import (
	"context"
	"fmt"
)

// ClientAuthVersion implements store.Clients: the client's disabled flag,
// its newest credential id and how many of its credentials carry an
// expiry. Rotations add credentials and set expiries; both only grow, so
// an old version never comes back while the credentials differ.
func (q *queries) ClientAuthVersion(ctx context.Context, clientID string) (string, error) {
	var (
		disabled    bool
		newest, exp int64
	)
	err := q.queryRow(ctx, `SELECT c.disabled,
		COALESCE((SELECT MAX(cc.id) FROM client_credentials cc WHERE cc.client_id = c.id), 0),
		(SELECT COUNT(cc.expires_at) FROM client_credentials cc WHERE cc.client_id = c.id)
		FROM clients c WHERE c.id = ?`, clientID).Scan(&disabled, &newest, &exp)
	if err != nil {
		return "", fmt.Errorf("client auth version: %w", notFound(err))
	}
	return fmt.Sprintf("%t/%d/%d", disabled, newest, exp), nil
}
