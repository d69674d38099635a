package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// CreateOperator implements store.Operators.
func (q *queries) CreateOperator(ctx context.Context, o store.Operator) error {
	if o.Name == "" || o.Role == "" || o.TokenHash == "" || o.CreatedAt.IsZero() {
		return errors.New("create operator: Name, Role, TokenHash and CreatedAt are required")
	}
	_, err := q.exec(ctx, `INSERT INTO operators (name, role, token_hash, disabled, created_at)
		VALUES (?, ?, ?, ?, ?)`, o.Name, o.Role, o.TokenHash, o.Disabled, q.ts(o.CreatedAt))
	if err != nil {
		if q.d.IsUniqueViolation(err) {
			return store.ErrConflict
		}
		return fmt.Errorf("create operator: %w", err)
	}
	return nil
}

// ListOperators implements store.Operators.
func (q *queries) ListOperators(ctx context.Context) ([]store.Operator, error) {
	rows, err := q.query(ctx, `SELECT name, role, disabled, created_at, rotated_at FROM operators ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (store.Operator, error) {
		var o store.Operator
		err := rows.Scan(&o.Name, &o.Role, &o.Disabled, dbTime{&o.CreatedAt}, dbTime{&o.RotatedAt})
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	return out, nil
}

// FindOperatorByToken implements store.Operators.
func (q *queries) FindOperatorByToken(ctx context.Context, hash string) (store.Operator, error) {
	var o store.Operator
	err := q.queryRow(ctx, `SELECT name, role, token_hash, disabled, created_at, rotated_at FROM operators
		WHERE token_hash = ? AND NOT disabled`, hash).
		Scan(&o.Name, &o.Role, &o.TokenHash, &o.Disabled, dbTime{&o.CreatedAt}, dbTime{&o.RotatedAt})
	if err != nil {
		return store.Operator{}, fmt.Errorf("find operator: %w", notFound(err))
	}
	return o, nil
}

// SetOperatorDisabled implements store.Operators.
func (q *queries) SetOperatorDisabled(ctx context.Context, name string, disabled bool) error {
	n, err := q.exec(ctx, `UPDATE operators SET disabled = ? WHERE name = ?`, disabled, name)
	if err != nil {
		return fmt.Errorf("set operator disabled: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("set operator disabled: %w", store.ErrNotFound)
	}
	return nil
}

// RotateOperatorToken implements store.Operators.
func (q *queries) RotateOperatorToken(ctx context.Context, name, hash string, at time.Time) error {
	n, err := q.exec(ctx, `UPDATE operators SET token_hash = ?, rotated_at = ? WHERE name = ?`, hash, q.ts(at), name)
	if err != nil {
		if q.d.IsUniqueViolation(err) {
			return store.ErrConflict
		}
		return fmt.Errorf("rotate operator token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("rotate operator token: %w", store.ErrNotFound)
	}
	return nil
}
