package operators

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Tokens are generated, never chosen: a prefix that tells an operator
// token from a client's at a glance (and lets the native API skip the
// lookup for anything else) and 256 random bits as hex.
const (
	tokenPrefix = "lethe_op_"
	tokenBytes  = 32
	tokenLen    = len(tokenPrefix) + 2*tokenBytes
	// domainToken is the hash domain of operator tokens; changing it
	// invalidates every stored token.
	domainToken = "lethe/operator/token"
)

// ErrInvalidCredentials is the one error for an operator token that is
// malformed, unknown or of a disabled operator.
var ErrInvalidCredentials = &lethe.Error{Code: lethe.EUNAUTH, Message: "invalid credentials"}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidateName reports whether name can name an operator: 1 to 64
// letters, digits, '.', '_', '@' or '-', starting with a letter or digit,
// so it is safe in the audit log, logs and shells. It must not be the
// admin token's name, which the audit log reserves for it.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return lethe.Errorf(lethe.EINVALID, "operator name must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
	}
	if name == AdminTokenName {
		return lethe.Errorf(lethe.EINVALID, "operator name %q is reserved for the admin token", AdminTokenName)
	}
	return nil
}

// ParseRole returns the role named s, or an EINVALID error.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", lethe.Errorf(lethe.EINVALID, "role must be viewer, reviewer or admin")
	}
	return r, nil
}

// Service manages operators and authenticates their tokens.
type Service struct {
	st   store.Operators
	keys *seal.Keyring
	now  func() time.Time
}

// NewService returns a Service; keys must be the keyring of the store's
// deployment so the hashes match. now nil: time.Now.
func NewService(st store.Operators, keys *seal.Keyring, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, keys: keys, now: now}
}

// Created is a new operator with its token in plaintext: lethe keeps only
// its hash, so this is the one time it can be shown.
type Created struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Token     string    `json:"token"`
	CreatedAt time.Time `json:"created_at"`
}

// Create stores a new operator with a generated token.
func (s *Service) Create(ctx context.Context, name string, role Role) (Created, error) {
	if err := ValidateName(name); err != nil {
		return Created{}, err
	}
	if !role.Valid() {
		return Created{}, lethe.Errorf(lethe.EINVALID, "role must be viewer, reviewer or admin")
	}
	tok := newToken()
	now := s.now().UTC().Truncate(time.Microsecond)
	err := s.st.CreateOperator(ctx, store.Operator{
		Name: name, Role: string(role), TokenHash: s.keys.Hash(domainToken, tok), CreatedAt: now,
	})
	if errors.Is(err, store.ErrConflict) {
		return Created{}, lethe.Errorf(lethe.ECONFLICT, "an operator named %q exists", name)
	}
	if err != nil {
		return Created{}, err
	}
	return Created{Name: name, Role: role, Token: tok, CreatedAt: now}, nil
}

// List returns every operator, without tokens.
func (s *Service) List(ctx context.Context) ([]store.Operator, error) {
	return s.st.ListOperators(ctx)
}

// SetDisabled disables (its token stops working at once) or enables an
// operator.
func (s *Service) SetDisabled(ctx context.Context, name string, disabled bool) error {
	err := s.st.SetOperatorDisabled(ctx, name, disabled)
	if errors.Is(err, store.ErrNotFound) {
		return lethe.Errorf(lethe.ENOTFOUND, "no operator named %q", name)
	}
	return err
}

// Rotate gives an operator a new token; the old one stops working at once
// (an operator token is a person's, not a fleet's: there is no overlap to
// roll out).
func (s *Service) Rotate(ctx context.Context, name string) (Created, error) {
	tok := newToken()
	now := s.now().UTC().Truncate(time.Microsecond)
	err := s.st.RotateOperatorToken(ctx, name, s.keys.Hash(domainToken, tok), now)
	if errors.Is(err, store.ErrNotFound) {
		return Created{}, lethe.Errorf(lethe.ENOTFOUND, "no operator named %q", name)
	}
	if err != nil {
		return Created{}, err
	}
	ops, err := s.st.ListOperators(ctx)
	if err != nil {
		return Created{}, err
	}
	for _, o := range ops {
		if o.Name == name {
			return Created{Name: name, Role: Role(o.Role), Token: tok, CreatedAt: o.CreatedAt}, nil
		}
	}
	return Created{}, fmt.Errorf("rotate operator: %q vanished", name)
}

// Authenticate returns the enabled operator whose token tok is. A token
// not shaped like an operator token is refused without a lookup.
func (s *Service) Authenticate(ctx context.Context, tok string) (Principal, error) {
	if !IsToken(tok) {
		return Principal{}, ErrInvalidCredentials
	}
	o, err := s.st.FindOperatorByToken(ctx, s.keys.Hash(domainToken, tok))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrInvalidCredentials
	}
	if err != nil {
		return Principal{}, fmt.Errorf("find operator: %w", err)
	}
	return Principal{Name: o.Name, Role: Role(o.Role)}, nil
}

// IsToken reports whether tok is shaped like an operator token.
func IsToken(tok string) bool {
	if len(tok) != tokenLen || !strings.HasPrefix(tok, tokenPrefix) {
		return false
	}
	for _, c := range tok[len(tokenPrefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func newToken() string { return tokenPrefix + seal.RandomToken(tokenBytes) }
