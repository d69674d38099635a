package clients

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// AuthenticateAPIKey returns the client that owns apiKey and every
// currently valid HMAC shared secret of that client (more than one during a
// rotation's overlap). An unknown key, or one of a disabled client, is
// ErrInvalidCredentials.
//
// The key is found by its keyed hash: the database compares hashes an
// attacker cannot compute, so the lookup's timing tells nothing about how
// close a guess was.
func (s *Service) AuthenticateAPIKey(ctx context.Context, apiKey string) (clientID string, secrets [][]byte, err error) {
	if apiKey == "" || len(apiKey) > MaxCredentialLen {
		return "", nil, ErrInvalidCredentials
	}
	now := s.clock()
	hash := s.keys.Hash(domainAPIKey, apiKey)
	if e, ok := s.cache.apiKey(hash, now); ok {
		v, err := s.cache.sharedVersion(ctx, e.clientID, s.st.ClientAuthVersion)
		if err == nil && v == e.version {
			if secrets := e.secretsAt(now); len(secrets) > 0 {
				return e.clientID, secrets, nil
			}
			return "", nil, ErrInvalidCredentials
		}
		// Changed, gone or unreadable: look it up afresh.
	}
	cred, err := s.st.FindCredential(ctx, store.CredAPIKey, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, ErrInvalidCredentials
	}
	if err != nil {
		return "", nil, fmt.Errorf("find api key: %w", err)
	}
	// The version is read before the secrets: a change after it makes the
	// next use see a new version and read them again.
	version, err := s.st.ClientAuthVersion(ctx, cred.ClientID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", nil, fmt.Errorf("client auth version: %w", err)
	}
	creds, err := s.st.ClientCredentials(ctx, cred.ClientID, store.CredHMACSecret, now)
	if err != nil {
		return "", nil, fmt.Errorf("client secrets: %w", err)
	}
	if len(creds) == 0 {
		return "", nil, ErrInvalidCredentials
	}
	secrets = make([][]byte, len(creds))
	for i, c := range creds {
		secrets[i] = []byte(c.Secret)
	}
	if version != "" {
		s.cache.putAPIKey(hash, apiKeyEntry{clientID: cred.ClientID, version: version, keyExpires: cred.ExpiresAt, secrets: creds}, now)
	}
	return cred.ClientID, secrets, nil
}

// AuthenticateOAuth returns the lethe client id of the client whose OAuth
// client_id and client_secret these are. Any mismatch is
// ErrInvalidCredentials. The secret is compared, as a keyed hash, with every
// valid secret of the client in constant time and without stopping at the
// first match.
func (s *Service) AuthenticateOAuth(ctx context.Context, clientID, clientSecret string) (string, error) {
	if clientID == "" || clientSecret == "" || len(clientID) > MaxCredentialLen || len(clientSecret) > MaxCredentialLen {
		return "", ErrInvalidCredentials
	}
	now := s.clock()
	cred, err := s.st.FindCredential(ctx, store.CredOAuthClientID, s.keys.Hash(domainOAuthClientID, clientID), now)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrInvalidCredentials
	}
	if err != nil {
		return "", fmt.Errorf("find client_id: %w", err)
	}
	secrets, err := s.st.ClientCredentials(ctx, cred.ClientID, store.CredOAuthSecret, now)
	if err != nil {
		return "", fmt.Errorf("client secrets: %w", err)
	}
	want := s.keys.Hash(domainOAuthSecret, clientSecret)
	match := false
	for _, c := range secrets {
		if seal.Equal(c.Hash, want) {
			match = true
		}
	}
	if !match {
		return "", ErrInvalidCredentials
	}
	return cred.ClientID, nil
}

// Token is an access token just issued; Value is shown to the client once
// and stored only as a keyed hash.
type Token struct {
	Value     string
	ClientID  string
	Scope     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// IssueToken makes a new opaque bearer token for the client, valid for the
// Service's TokenTTL, or until the end of a rotation's overlap when one is
// running: the token may have been obtained with the secret being retired.
func (s *Service) IssueToken(ctx context.Context, clientID, scope string) (Token, error) {
	now := s.clock()
	t := Token{
		Value:     seal.RandomToken(tokenBytes),
		ClientID:  clientID,
		Scope:     scope,
		CreatedAt: now,
		ExpiresAt: now.Add(s.tokenTTL),
	}
	secrets, err := s.st.ClientCredentials(ctx, clientID, store.CredOAuthSecret, now)
	if err != nil {
		return Token{}, fmt.Errorf("issue token: %w", err)
	}
	for _, c := range secrets {
		if !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(t.ExpiresAt) {
			t.ExpiresAt = c.ExpiresAt
		}
	}
	err = s.st.CreateToken(ctx, store.Token{
		Hash: s.keys.Hash(domainAccessToken, t.Value), ClientID: clientID, Scope: scope,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
	})
	if err != nil {
		return Token{}, fmt.Errorf("issue token: %w", err)
	}
	return t, nil
}

// AuthenticateToken returns the stored token for a presented bearer token.
// An unknown or expired token, or one of a disabled client, is
// ErrInvalidCredentials.
func (s *Service) AuthenticateToken(ctx context.Context, token string) (store.Token, error) {
	if token == "" || len(token) > MaxCredentialLen {
		return store.Token{}, ErrInvalidCredentials
	}
	t, err := s.st.FindToken(ctx, s.keys.Hash(domainAccessToken, token), s.clock())
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, ErrInvalidCredentials
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("find token: %w", err)
	}
	return t, nil
}
