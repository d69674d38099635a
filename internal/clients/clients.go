// Package clients manages the partners and applications allowed to submit
// deletion requests, and checks their credentials for every API profile.
//
// A client holds four credentials, one pair per partner-facing profile:
//
//   - s2s: an API key (X-API-KEY) and an HMAC shared secret that signs
//     each body;
//   - connect: an OAuth client_id and client_secret, exchanged for
//     short-lived bearer tokens that the native API accepts too.
//
// Values that only need comparing (API key, client_id, client_secret,
// access tokens) are stored as keyed hashes (seal.Keyring.Hash, one domain
// per kind), so a copy of the database does not hold usable credentials.
// The shared secret must come back to verify signatures, so the store keeps
// it sealed (AES-256-GCM) instead. Every comparison of a presented value
// with a stored one is constant-time.
package clients

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Hash domains, one per kind of hashed value, so that one string used as
// two kinds of credential never hashes alike. Changing one invalidates every
// stored credential of that kind.
const (
	domainAPIKey        = "lethe/client/api_key"
	domainOAuthClientID = "lethe/client/oauth_client_id"
	domainOAuthSecret   = "lethe/client/oauth_client_secret"
	domainAccessToken   = "lethe/client/access_token"
)

// Defaults.
const (
	// DefaultTokenTTL is how long an access token is valid.
	DefaultTokenTTL = 24 * time.Hour
	// DefaultOverlap is how long the old secrets keep working after a
	// rotation (the CLI's default; RotateSecret takes the value as given).
	DefaultOverlap = 24 * time.Hour
)

// Sizes, in random bytes, of generated values (hex doubles the length).
// Secrets and tokens carry 256 bits; identifiers 128 bits, which is ample
// for something that only has to be unguessable alongside a secret.
const (
	apiKeyBytes = 16
	idBytes     = 16
	secretBytes = 32
	tokenBytes  = 32
)

// MaxCredentialLen bounds a credential given at creation.
const MaxCredentialLen = 256

// ErrInvalidCredentials is returned for any credential that is unknown,
// expired, wrong, or belongs to a disabled client: one error for all, so
// callers cannot tell which.
var ErrInvalidCredentials = &lethe.Error{Code: lethe.EUNAUTH, Message: "invalid credentials"}

// Service manages clients and authenticates them.
type Service struct {
	st       store.Store
	keys     *seal.Keyring
	tokenTTL time.Duration
	now      func() time.Time
	cache    *authCache
}

// Config configures a Service.
type Config struct {
	// TokenTTL is the lifetime of issued access tokens. Default
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// AuthCacheTTL bounds how long a successful API key lookup is reused
	// (each use still checks the client's auth version, see authCache).
	// Default DefaultAuthCacheTTL; negative turns the cache off.
	AuthCacheTTL time.Duration
}

// New returns a Service. keys must be the keyring the store was opened
// with, so hashes computed here match the ones stored.
func New(st store.Store, keys *seal.Keyring, cfg Config) (*Service, error) {
	if cfg.TokenTTL < 0 {
		return nil, fmt.Errorf("clients: token TTL must not be negative, got %s", cfg.TokenTTL)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if st == nil || keys == nil {
		return nil, errors.New("clients: store and keyring are required")
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = DefaultAuthCacheTTL
	}
	return &Service{st: st, keys: keys, tokenTTL: cfg.TokenTTL, now: cfg.Now, cache: newAuthCache(cfg.AuthCacheTTL)}, nil
}

// TokenTTL is the lifetime of the access tokens the Service issues.
func (s *Service) TokenTTL() time.Duration { return s.tokenTTL }

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CreateParams names a new client. Every credential left empty is
// generated; giving one is meant for moving an existing partner to lethe
// without changing its configuration, and its strength is then the
// operator's responsibility.
type CreateParams struct {
	Name string
	// APIKey is the s2s X-API-KEY.
	APIKey string
	// Secret is the s2s HMAC shared secret.
	Secret string
	// ClientID is the connect profile's OAuth client_id (not the lethe
	// client id, which is always generated).
	ClientID string
	// ClientSecret is the connect profile's OAuth client_secret.
	ClientSecret string
}

// Created is a new client with its credentials in plaintext. lethe keeps no
// readable copy of the API key, client_id or client_secret, so this is the
// only time they can be shown: the CLI prints it once, as JSON.
type Created struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	APIKey       string    `json:"api_key"`
	Secret       string    `json:"shared_secret"`
	ClientID     string    `json:"client_id"`
	ClientSecret string    `json:"client_secret"`
	CreatedAt    time.Time `json:"created_at"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateName reports whether name can name a client: 1 to 64 letters,
// digits, '.', '_' or '-', starting with a letter or digit, so it is safe
// in logs, shells and URLs.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return lethe.Errorf(lethe.EINVALID, "client name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// checkGiven validates a credential given at creation: printable ASCII
// without spaces, so it survives headers, JSON and shells unchanged.
func checkGiven(field, v string) error {
	if len(v) > MaxCredentialLen {
		return lethe.Errorf(lethe.EINVALID, "%s is longer than %d bytes", field, MaxCredentialLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return lethe.Errorf(lethe.EINVALID, "%s must be printable ASCII without spaces", field)
		}
	}
	return nil
}

func orRandom(v string, n int) string {
	if v != "" {
		return v
	}
	return seal.RandomToken(n)
}

// Create stores a new client with its credentials.
func (s *Service) Create(ctx context.Context, p CreateParams) (Created, error) {
	if err := ValidateName(p.Name); err != nil {
		return Created{}, err
	}
	for _, f := range []struct{ name, v string }{
		{"api key", p.APIKey}, {"shared secret", p.Secret},
		{"client_id", p.ClientID}, {"client_secret", p.ClientSecret},
	} {
		if err := checkGiven(f.name, f.v); err != nil {
			return Created{}, err
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Created{}, fmt.Errorf("new client id: %w", err)
	}
	now := s.clock()
	out := Created{
		ID:           id.String(),
		Name:         p.Name,
		APIKey:       orRandom(p.APIKey, apiKeyBytes),
		Secret:       orRandom(p.Secret, secretBytes),
		ClientID:     orRandom(p.ClientID, idBytes),
		ClientSecret: orRandom(p.ClientSecret, secretBytes),
		CreatedAt:    now,
	}
	c := &lethe.Client{ID: out.ID, Name: out.Name, CreatedAt: now}
	creds := []store.Credential{
		{ClientID: c.ID, Kind: store.CredAPIKey, Hash: s.keys.Hash(domainAPIKey, out.APIKey), CreatedAt: now},
		{ClientID: c.ID, Kind: store.CredHMACSecret, Secret: out.Secret, CreatedAt: now},
		{ClientID: c.ID, Kind: store.CredOAuthClientID, Hash: s.keys.Hash(domainOAuthClientID, out.ClientID), CreatedAt: now},
		{ClientID: c.ID, Kind: store.CredOAuthSecret, Hash: s.keys.Hash(domainOAuthSecret, out.ClientSecret), CreatedAt: now},
	}
	err = s.st.CreateClient(ctx, c, creds)
	if errors.Is(err, store.ErrConflict) {
		// The name or one of the given credentials is taken; say which
		// without saying whose.
		if _, gerr := s.st.GetClientByName(ctx, p.Name); gerr == nil {
			return Created{}, lethe.Errorf(lethe.ECONFLICT, "a client named %q already exists", p.Name)
		}
		return Created{}, lethe.Errorf(lethe.ECONFLICT, "a given API key or client_id is already used by another client")
	}
	if err != nil {
		return Created{}, fmt.Errorf("create client: %w", err)
	}
	out.CreatedAt = c.CreatedAt
	return out, nil
}

// List returns every client, ordered by name.
func (s *Service) List(ctx context.Context) ([]*lethe.Client, error) {
	cs, err := s.st.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return cs, nil
}

// Get returns the client named name.
func (s *Service) Get(ctx context.Context, name string) (*lethe.Client, error) {
	c, err := s.st.GetClientByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, lethe.Errorf(lethe.ENOTFOUND, "no client named %q", clipName(name))
	}
	if err != nil {
		return nil, fmt.Errorf("get client: %w", err)
	}
	return c, nil
}

// Rotated holds the new secrets made by RotateSecret, shown once.
type Rotated struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Secret       string `json:"shared_secret"`
	ClientSecret string `json:"client_secret"`
	// OldValidUntil is when the previous secrets stop working.
	OldValidUntil time.Time `json:"old_valid_until"`
}

// RotateSecret replaces the client's HMAC shared secret and its OAuth
// client_secret together; the previous ones (every unexpired one) keep
// working for overlap, so the partner can switch without downtime. Both
// rotate at once because both are the client's secret in one profile or
// the other, and a partner asking for a rotation wants the old secret
// retired whichever profile it uses; one command and one overlap is also
// the simplest thing to operate. The API key and client_id are identifiers
// and do not change.
//
// overlap is used as given: zero retires the old secrets at once (for a
// leaked secret). The CLI defaults it to DefaultOverlap. Access tokens
// already issued, and those issued during the overlap, expire with the
// old secrets at the overlap's end at the latest.
//
// Caveat: store.ExpireCredentials only sets an expiry on credentials that
// have none, so a secret already in an earlier rotation's overlap keeps
// that overlap's end even when a later rotation asks for less (see
// TestRotateShortensEarlierOverlap, skipped until the store shortens later
// expiries too).
func (s *Service) RotateSecret(ctx context.Context, name string, overlap time.Duration) (Rotated, error) {
	if overlap < 0 {
		return Rotated{}, lethe.Errorf(lethe.EINVALID, "overlap must not be negative")
	}
	c, err := s.Get(ctx, name)
	if err != nil {
		return Rotated{}, err
	}
	now := s.clock()
	out := Rotated{
		ID:            c.ID,
		Name:          c.Name,
		Secret:        seal.RandomToken(secretBytes),
		ClientSecret:  seal.RandomToken(secretBytes),
		OldValidUntil: now.Add(overlap),
	}
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		// Expire first: ExpireCredentials touches only credentials without
		// an expiry, and the new ones must not be among them.
		for _, kind := range []store.CredentialKind{store.CredHMACSecret, store.CredOAuthSecret} {
			if err := tx.ExpireCredentials(ctx, c.ID, kind, out.OldValidUntil); err != nil {
				return err
			}
		}
		if err := tx.ExpireTokens(ctx, c.ID, out.OldValidUntil); err != nil {
			return err
		}
		if err := tx.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredHMACSecret, Secret: out.Secret, CreatedAt: now}); err != nil {
			return err
		}
		return tx.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredOAuthSecret, Hash: s.keys.Hash(domainOAuthSecret, out.ClientSecret), CreatedAt: now})
	})
	if err != nil {
		return Rotated{}, fmt.Errorf("rotate secret: %w", err)
	}
	return out, nil
}

// Disable stops the client: its credentials and tokens are refused from
// now on, the tokens for good; its requests stay and keep being processed.
func (s *Service) Disable(ctx context.Context, name string) error {
	return s.setDisabled(ctx, name, true)
}

// Enable lets a disabled client in again with its credentials; access
// tokens issued before the disable stay dead.
func (s *Service) Enable(ctx context.Context, name string) error {
	return s.setDisabled(ctx, name, false)
}

func (s *Service) setDisabled(ctx context.Context, name string, disabled bool) error {
	c, err := s.Get(ctx, name)
	if err != nil {
		return err
	}
	if err := s.st.SetClientDisabled(ctx, c.ID, disabled); err != nil {
		return fmt.Errorf("set client disabled: %w", err)
	}
	return nil
}

func clipName(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "..."
	}
	return s
}
