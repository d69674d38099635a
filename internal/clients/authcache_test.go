package clients_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// TestAuthCacheAcrossProcesses: credential lookups are cached, yet a
// disable or a rotation made by one process stops the old credentials in
// the process that made it at once, and in another process on the same
// database within DefaultAuthCacheTTL, tokens included.
func TestAuthCacheAcrossProcesses(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		k := testdb.Keyring(t)
		s, another := b.Open(t, k)
		clock := ratelimittest.NewClock()
		here, err := clients.New(s, k, clients.Config{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		there, err := clients.New(another(), k, clients.Config{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		c, err := here.Create(ctx, clients.CreateParams{Name: "cached"})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := here.IssueToken(ctx, c.ID, "s")
		if err != nil {
			t.Fatal(err)
		}
		keyOK := func(svc *clients.Service, secret string) bool {
			t.Helper()
			id, secrets, err := svc.AuthenticateAPIKey(ctx, c.APIKey)
			if errors.Is(err, clients.ErrInvalidCredentials) {
				return false
			}
			if err != nil || id != c.ID {
				t.Fatalf("AuthenticateAPIKey = %q, %v", id, err)
			}
			for _, s := range secrets {
				if string(s) == secret {
					return true
				}
			}
			return false
		}
		tokenOK := func(svc *clients.Service) bool {
			t.Helper()
			_, err := svc.AuthenticateToken(ctx, tok.Value)
			if err != nil && !errors.Is(err, clients.ErrInvalidCredentials) {
				t.Fatal(err)
			}
			return err == nil
		}
		if !keyOK(here, c.Secret) || !keyOK(there, c.Secret) || !tokenOK(here) || !tokenOK(there) {
			t.Fatal("fresh credentials refused")
		}

		// A rotation without overlap, made here.
		rot, err := here.RotateSecret(ctx, "cached", 0)
		if err != nil {
			t.Fatal(err)
		}
		if keyOK(here, c.Secret) || !keyOK(here, rot.Secret) || tokenOK(here) {
			t.Fatal("the rotating process still accepts the old secret or token")
		}
		// The other process has them cached: they work until the TTL ends,
		// which proves the cache is used, and not a moment after.
		if !keyOK(there, c.Secret) || !tokenOK(there) {
			t.Fatal("the other process did not use its cached lookups")
		}
		clock.Advance(clients.DefaultAuthCacheTTL)
		if keyOK(there, c.Secret) || !keyOK(there, rot.Secret) || tokenOK(there) {
			t.Fatal("the other process accepts the old secret or token past the cache TTL")
		}

		// A disable made by the other process.
		if !keyOK(here, rot.Secret) {
			t.Fatal("new secret refused")
		}
		if err := there.Disable(ctx, "cached"); err != nil {
			t.Fatal(err)
		}
		if keyOK(there, rot.Secret) {
			t.Fatal("the disabling process still accepts the client")
		}
		clock.Advance(clients.DefaultAuthCacheTTL)
		if keyOK(here, rot.Secret) {
			t.Fatal("a disabled client is accepted past the cache TTL")
		}
	})
}

// An expiry reached while an entry is cached ends the credential on time:
// the overlap of a rotation made elsewhere is not stretched by the cache.
func TestAuthCacheKeepsExpiries(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		k := testdb.Keyring(t)
		s, another := b.Open(t, k)
		clock := ratelimittest.NewClock()
		here, err := clients.New(s, k, clients.Config{Now: clock.Now, AuthCacheTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		there, err := clients.New(another(), k, clients.Config{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		c, err := there.Create(ctx, clients.CreateParams{Name: "overlap"})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := there.IssueToken(ctx, c.ID, "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := there.RotateSecret(ctx, "overlap", time.Minute); err != nil {
			t.Fatal(err)
		}
		// Cached here with both secrets and the token, all ending in a minute.
		_, secrets, err := here.AuthenticateAPIKey(ctx, c.APIKey)
		if err != nil || len(secrets) != 2 {
			t.Fatalf("during the overlap: %d secrets, %v; want 2", len(secrets), err)
		}
		if _, err := here.AuthenticateToken(ctx, tok.Value); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		_, secrets, err = here.AuthenticateAPIKey(ctx, c.APIKey)
		if err != nil || len(secrets) != 1 || string(secrets[0]) == c.Secret {
			t.Fatalf("after the overlap: %d secrets, %v; want only the new one", len(secrets), err)
		}
		if _, err := here.AuthenticateToken(ctx, tok.Value); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("token after the overlap: %v, want refused", err)
		}
	})
}
