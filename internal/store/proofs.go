package store

import (
	"context"
	"time"
)

// Receipt is a stored, signed receipt of a closed request. Body is the
// signed document exactly as issued (see package audit); the other fields
// are copies of what the store needs to find and scope it.
type Receipt struct {
	RequestID string
	// ClientID scopes reads like the request's own: the request row may be
	// purged long before the receipt.
	ClientID string
	KeyID    string
	Body     []byte
	// PartnerBody is the signed partner receipt issued with Body (per
	// target state and outcome, Body's digest; no objects, counts or
	// retention reasons): what the submitting client is served. Nil for
	// receipts issued before partner receipts existed.
	PartnerBody []byte
	IssuedAt    time.Time
}

// SigningKey is an Ed25519 key that signs (current) or signed (retired)
// receipts. Public keys are kept for good, so old receipts keep verifying
// after a rotation.
type SigningKey struct {
	KeyID     string
	PublicKey []byte // raw 32 bytes
	// PrivateSealed is the sealed seed of a key lethe generated; nil for a
	// key given in LETHE_SIGNING_KEY, which is never stored.
	PrivateSealed []byte
	Current       bool
	CreatedAt     time.Time
	RetiredAt     time.Time // zero while current
}

// IdentityHash is one identity of a request as it stays after
// minimisation: its type and keyed hash, never the value.
type IdentityHash struct {
	Type   string
	Hash   string
	Source string // "given" or "linked"
}

// Proofs persists what proves a request was carried out: receipts, the
// keys that sign them, and what audit verification walks.
type Proofs interface {
	// RequestIdentityHashes returns the request's identities' types and
	// keyed hashes, given ones first, whether or not values were dropped.
	RequestIdentityHashes(ctx context.Context, requestID string) ([]IdentityHash, error)
	// PutReceipt stores a receipt; ErrConflict if the request has one.
	PutReceipt(ctx context.Context, r Receipt) error
	// GetReceipt returns the request's receipt within scope, or ErrNotFound.
	GetReceipt(ctx context.Context, requestID string, scope Scope) (Receipt, error)

	// SigningKeys returns every signing key, current first, then newest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// MakeCurrentSigningKey makes k the current signing key, inserting it
	// when new, and retires the previous current key at k.CreatedAt.
	// Making the current key current again changes nothing.
	MakeCurrentSigningKey(ctx context.Context, k SigningKey) error

	// AuditRequestIDs returns up to limit distinct request ids that have
	// audit events, in order, after the id after ("" from the start).
	AuditRequestIDs(ctx context.Context, after string, limit int) ([]string, error)
	// RequestsWithoutAudit returns up to limit ids of requests or receipts
	// that have no audit event at all: a chain deleted as a whole.
	RequestsWithoutAudit(ctx context.Context, limit int) ([]string, error)
}
