package store

import (
	"context"
	"time"
)

// Operator is a named operator as stored: its token only as a keyed hash.
type Operator struct {
	Name      string
	Role      string // operators.Role; the store only checks it is one of them
	TokenHash string
	Disabled  bool
	CreatedAt time.Time
	RotatedAt time.Time // zero until the first rotation
}

// Operators persists the named operators of the native API.
type Operators interface {
	// CreateOperator inserts o. ErrConflict if the name or token hash is
	// taken.
	CreateOperator(ctx context.Context, o Operator) error
	// ListOperators returns every operator by name, tokens' hashes left
	// empty.
	ListOperators(ctx context.Context) ([]Operator, error)
	// FindOperatorByToken returns the enabled operator whose token hashes
	// to hash; ErrNotFound otherwise.
	FindOperatorByToken(ctx context.Context, hash string) (Operator, error)
	// SetOperatorDisabled disables or enables an operator; ErrNotFound
	// when there is none of that name.
	SetOperatorDisabled(ctx context.Context, name string, disabled bool) error
	// RotateOperatorToken replaces an operator's token hash at at: the old
	// token stops working at once. ErrNotFound when there is no such
	// operator, ErrConflict when the hash is taken.
	RotateOperatorToken(ctx context.Context, name, hash string, at time.Time) error
}
