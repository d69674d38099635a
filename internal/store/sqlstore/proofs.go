package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/lethe-privacy/lethe/internal/store"
)

// RequestIdentityHashes implements store.Proofs.
func (q *queries) RequestIdentityHashes(ctx context.Context, requestID string) ([]store.IdentityHash, error) {
	rows, err := q.query(ctx, `SELECT type, value_hash, source FROM request_identities
		WHERE request_id = ? ORDER BY CASE source WHEN 'given' THEN 0 ELSE 1 END, id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("request identity hashes: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (store.IdentityHash, error) {
		var h store.IdentityHash
		err := rows.Scan(&h.Type, &h.Hash, &h.Source)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("request identity hashes: %w", err)
	}
	return out, nil
}

// PutReceipt implements store.Proofs.
func (q *queries) PutReceipt(ctx context.Context, r store.Receipt) error {
	if r.RequestID == "" || r.KeyID == "" || len(r.Body) == 0 || r.IssuedAt.IsZero() {
		return errors.New("put receipt: RequestID, KeyID, Body and IssuedAt are required")
	}
	var id string
	err := q.queryRow(ctx, `INSERT INTO receipts (request_id, client_id, key_id, body, partner_body, issued_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING request_id`,
		r.RequestID, r.ClientID, r.KeyID, string(r.Body), partnerBody(r), q.ts(r.IssuedAt)).Scan(&id)
	if err != nil {
		if errors.Is(notFound(err), store.ErrNotFound) {
			return fmt.Errorf("put receipt: %w", store.ErrConflict)
		}
		return fmt.Errorf("put receipt: %w", err)
	}
	return nil
}

// GetReceipt implements store.Proofs.
func (q *queries) GetReceipt(ctx context.Context, requestID string, scope store.Scope) (store.Receipt, error) {
	var r store.Receipt
	cond, args, ok := scopeWhere(scope)
	if !ok {
		return r, fmt.Errorf("get receipt: %w", store.ErrNotFound)
	}
	query := `SELECT request_id, client_id, key_id, body, partner_body, issued_at FROM receipts WHERE request_id = ?`
	if cond != "" {
		query += " AND " + cond
	}
	var body string
	var partner *string
	err := q.queryRow(ctx, query, append([]any{requestID}, args...)...).
		Scan(&r.RequestID, &r.ClientID, &r.KeyID, &body, &partner, dbTime{&r.IssuedAt})
	if err != nil {
		return store.Receipt{}, fmt.Errorf("get receipt: %w", notFound(err))
	}
	r.Body = []byte(body)
	if partner != nil {
		r.PartnerBody = []byte(*partner)
	}
	return r, nil
}

// partnerBody is r's partner receipt as stored: NULL when there is none.
func partnerBody(r store.Receipt) any {
	if len(r.PartnerBody) == 0 {
		return nil
	}
	return string(r.PartnerBody)
}

// SigningKeys implements store.Proofs.
func (q *queries) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := q.query(ctx, `SELECT key_id, public_key, private_sealed, current, created_at, retired_at
		FROM signing_keys ORDER BY current IS NULL, created_at DESC, key_id`)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (store.SigningKey, error) {
		var k store.SigningKey
		var current *int64
		err := rows.Scan(&k.KeyID, &k.PublicKey, &k.PrivateSealed, &current, dbTime{&k.CreatedAt}, dbTime{&k.RetiredAt})
		k.Current = current != nil
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return out, nil
}

// MakeCurrentSigningKey implements store.Proofs.
func (q *queries) MakeCurrentSigningKey(ctx context.Context, k store.SigningKey) error {
	if k.KeyID == "" || len(k.PublicKey) == 0 || k.CreatedAt.IsZero() {
		return errors.New("make current signing key: KeyID, PublicKey and CreatedAt are required")
	}
	err := q.atomic(ctx, func(q *queries) error {
		// Retire first: the unique current column admits one current key.
		if _, err := q.exec(ctx, `UPDATE signing_keys SET current = NULL, retired_at = ?
			WHERE current = 1 AND key_id <> ?`, q.ts(k.CreatedAt), k.KeyID); err != nil {
			return err
		}
		// A key made current again (LETHE_SIGNING_KEY set back to an older
		// key) keeps its creation time and its sealed seed, if any.
		_, err := q.exec(ctx, `INSERT INTO signing_keys (key_id, public_key, private_sealed, current, created_at)
			VALUES (?, ?, ?, 1, ?)
			ON CONFLICT (key_id) DO UPDATE SET current = 1, retired_at = NULL`,
			k.KeyID, k.PublicKey, k.PrivateSealed, q.ts(k.CreatedAt))
		if err != nil && q.d.IsUniqueViolation(err) {
			return store.ErrConflict
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("make current signing key: %w", err)
	}
	return nil
}

func (q *queries) ids(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(rows Rows) (string, error) {
		var s string
		err := rows.Scan(&s)
		return s, err
	})
}

// AuditRequestIDs implements store.Proofs.
func (q *queries) AuditRequestIDs(ctx context.Context, after string, limit int) ([]string, error) {
	out, err := q.ids(ctx, `SELECT DISTINCT request_id FROM audit_events
		WHERE request_id > ? ORDER BY request_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit request ids: %w", err)
	}
	return out, nil
}

// RequestsWithoutAudit implements store.Proofs.
func (q *queries) RequestsWithoutAudit(ctx context.Context, limit int) ([]string, error) {
	out, err := q.ids(ctx, `SELECT id FROM (
			SELECT id FROM requests UNION SELECT request_id FROM receipts
		) x WHERE NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.request_id = x.id)
		ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("requests without audit: %w", err)
	}
	return out, nil
}
