package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// suppressionDomain separates suppression hashes from every other keyed
// hash of an identity (request_identities.value_hash uses "identity"), so
// the list cannot be joined back to the requests that fed it.
const suppressionDomain = "suppression"

func (q *queries) suppressionHash(id lethe.Identity) string {
	return q.kr.Hash(suppressionDomain, string(id.Type)+":"+id.Value)
}

// SuppressRequestIdentities implements store.Suppressions.
func (q *queries) SuppressRequestIdentities(ctx context.Context, requestID string, at time.Time) (int, error) {
	var n int
	err := q.atomic(ctx, func(q *queries) error {
		var clientID string
		if err := q.queryRow(ctx, `SELECT client_id FROM requests WHERE id = ?`, requestID).Scan(&clientID); err != nil {
			return notFound(err)
		}
		ids, err := q.RequestIdentities(ctx, requestID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := q.exec(ctx, `INSERT INTO suppressions (hash, client_id, request_id, created_at)
				VALUES (?, ?, ?, ?) ON CONFLICT (hash, client_id) DO NOTHING`,
				q.suppressionHash(id), clientID, requestID, q.ts(at)); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("suppress request identities: %w", err)
	}
	return n, nil
}

// CheckSuppressions implements store.Suppressions.
func (q *queries) CheckSuppressions(ctx context.Context, scope store.Scope, ids []lethe.Identity) ([]bool, error) {
	out := make([]bool, len(ids))
	if !scope.All && scope.ClientID == "" {
		return out, nil // the zero scope sees nothing
	}
	hashes := make([]string, len(ids))
	for i, id := range ids {
		hashes[i] = q.suppressionHash(id)
	}
	uniq := slices.Compact(slices.Sorted(slices.Values(hashes)))
	found := map[string]bool{}
	for batch := range slices.Chunk(uniq, subjectBatch) {
		args := make([]any, 0, len(batch)+1)
		for _, h := range batch {
			args = append(args, h)
		}
		query := `SELECT DISTINCT hash FROM suppressions WHERE hash IN (` + placeholders(len(batch)) + `)`
		if !scope.All {
			query += ` AND client_id = ?`
			args = append(args, scope.ClientID)
		}
		rows, err := q.query(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("check suppressions: %w", err)
		}
		hs, err := collect(rows, func(rows Rows) (string, error) {
			var h string
			return h, rows.Scan(&h)
		})
		if err != nil {
			return nil, fmt.Errorf("check suppressions: %w", err)
		}
		for _, h := range hs {
			found[h] = true
		}
	}
	for i, h := range hashes {
		out[i] = found[h]
	}
	return out, nil
}

// RemoveSuppression implements store.Suppressions.
func (q *queries) RemoveSuppression(ctx context.Context, id lethe.Identity) (string, int, error) {
	h := q.suppressionHash(id)
	n, err := q.exec(ctx, `DELETE FROM suppressions WHERE hash = ?`, h)
	if err != nil {
		return "", 0, fmt.Errorf("remove suppression: %w", err)
	}
	return h, int(n), nil
}
