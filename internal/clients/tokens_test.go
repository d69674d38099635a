package clients_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
)

// TestTokensDieWithRotation: a rotation's overlap ends every token issued
// before it and during it, whichever secret obtained it; tokens issued
// after the overlap live their full TTL; a rotation without overlap ends
// tokens at once.
func TestTokensDieWithRotation(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)
		c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "rotating"})
		if err != nil {
			t.Fatal(err)
		}
		alive := func(tok clients.Token) bool {
			t.Helper()
			_, err := e.Clients.AuthenticateToken(ctx, tok.Value)
			if err != nil && !errors.Is(err, clients.ErrInvalidCredentials) {
				t.Fatal(err)
			}
			return err == nil
		}
		issue := func() clients.Token {
			t.Helper()
			tok, err := e.Clients.IssueToken(ctx, c.ID, "s")
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}

		before := issue()
		rot, err := e.Clients.RotateSecret(ctx, "rotating", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(10 * time.Minute)
		during := issue()
		if !during.ExpiresAt.Equal(rot.OldValidUntil) {
			t.Errorf("token issued during the overlap expires at %s, want the overlap's end %s", during.ExpiresAt, rot.OldValidUntil)
		}
		if !alive(before) || !alive(during) {
			t.Fatal("tokens refused within the overlap")
		}
		e.Clock.Advance(50*time.Minute - time.Microsecond)
		if !alive(before) || !alive(during) {
			t.Fatal("tokens refused just before the overlap's end")
		}
		e.Clock.Advance(time.Microsecond)
		if alive(before) || alive(during) {
			t.Fatal("tokens of before and during the overlap outlived it")
		}
		after := issue()
		if got := after.ExpiresAt.Sub(after.CreatedAt); got != clients.DefaultTokenTTL {
			t.Errorf("token issued after the overlap valid for %s, want %s", got, clients.DefaultTokenTTL)
		}

		// No overlap (a leaked secret): every token ends now.
		if _, err := e.Clients.RotateSecret(ctx, "rotating", 0); err != nil {
			t.Fatal(err)
		}
		if alive(after) {
			t.Fatal("token outlived a rotation without overlap")
		}
		if fresh := issue(); !alive(fresh) {
			t.Fatal("token issued after the rotation refused")
		}
	})
}
