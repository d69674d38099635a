package clients_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
	"github.com/lethe-privacy/lethe/internal/ratelimit/ratelimittest"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// lookups is a real store that counts API key lookups.
type lookups struct {
	store.Store
	n atomic.Int64
}

func (l *lookups) FindCredential(ctx context.Context, kind store.CredentialKind, hash string, now time.Time) (store.Credential, error) {
	l.n.Add(1)
	return l.Store.FindCredential(ctx, kind, hash, now)
}

// TestAuthCacheAcrossProcesses: a process reuses its API key lookups, yet
// a rotation or a disable made by another process on the same database
// (the CLI, another node) takes effect on its next request, as it did
// before lookups were cached.
func TestAuthCacheAcrossProcesses(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		k := testdb.Keyring(t)
		s, another := b.Open(t, k)
		clock := ratelimittest.NewClock()
		counted := &lookups{Store: s}
		here, err := clients.New(counted, k, clients.Config{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		there, err := clients.New(another(), k, clients.Config{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		c, err := there.Create(ctx, clients.CreateParams{Name: "cached"})
		if err != nil {
			t.Fatal(err)
		}
		keyOK := func(secret string) bool {
			t.Helper()
			id, secrets, err := here.AuthenticateAPIKey(ctx, c.APIKey)
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
		for range 5 {
			if !keyOK(c.Secret) {
				t.Fatal("fresh credentials refused")
			}
		}
		if n := counted.n.Load(); n != 1 {
			t.Fatalf("5 uses looked the key up %d times, want 1 (cached)", n)
		}

		rot, err := there.RotateSecret(ctx, "cached", 0)
		if err != nil {
			t.Fatal(err)
		}
		if keyOK(c.Secret) || !keyOK(rot.Secret) {
			t.Fatal("a rotation by another process did not take effect at once")
		}
		if err := there.Disable(ctx, "cached"); err != nil {
			t.Fatal(err)
		}
		if keyOK(rot.Secret) {
			t.Fatal("a disable by another process did not take effect at once")
		}
		if err := there.Enable(ctx, "cached"); err != nil {
			t.Fatal(err)
		}
		if !keyOK(rot.Secret) {
			t.Fatal("an enable by another process did not take effect at once")
		}
		// A rotation with an overlap: both secrets, until the overlap ends,
		// even with the entry cached meanwhile.
		rot2, err := there.RotateSecret(ctx, "cached", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !keyOK(rot.Secret) || !keyOK(rot2.Secret) {
			t.Fatal("secrets refused within the overlap")
		}
		before := counted.n.Load()
		clock.Advance(30 * time.Second)
		if keyOK(rot.Secret) || !keyOK(rot2.Secret) {
			t.Fatal("the old secret outlived its overlap in the cache")
		}
		if counted.n.Load() != before {
			t.Error("the overlap's end was found by a new lookup, not from the cached expiry")
		}
		// The TTL bounds an entry whatever the version says.
		clock.Advance(clients.DefaultAuthCacheTTL)
		keyOK(rot2.Secret)
		if counted.n.Load() != before+1 {
			t.Error("an entry past its TTL was reused")
		}
	})
}
