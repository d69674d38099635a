package clients_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/profile/profiletest"
)

func agentPub(name string) ed25519.PublicKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
}

// TestAgents: registering an agent is idempotent and a new key replaces
// the old; a new token replaces the old; a disabled agent's token and
// setup are refused; a token is a keyed hash, not the token, in the store.
func TestAgents(t *testing.T) {
	profiletest.ForEach(t, func(t *testing.T, b profiletest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b)
		id1, err := e.Clients.RegisterAgent(ctx, "AA_ONE", agentPub("k1"))
		if err != nil {
			t.Fatal(err)
		}
		if id2, err := e.Clients.RegisterAgent(ctx, "AA_ONE", agentPub("k1")); err != nil || id2 != id1 {
			t.Fatalf("second registration: %s, %v (first %s)", id2, err, id1)
		}
		a, err := e.Clients.FindAgent(ctx, "AA_ONE")
		if err != nil || a.ID != "AA_ONE" || a.ClientID != id1 || len(a.VerifyKeys) != 1 || !a.VerifyKeys[0].Equal(agentPub("k1")) {
			t.Fatalf("FindAgent = %+v, %v", a, err)
		}
		if _, err := e.Clients.RegisterAgent(ctx, "AA_ONE", agentPub("k2")); err != nil {
			t.Fatal(err)
		}
		if a, _ := e.Clients.FindAgent(ctx, "AA_ONE"); len(a.VerifyKeys) != 1 || !a.VerifyKeys[0].Equal(agentPub("k2")) {
			t.Fatalf("after a new key: %+v", a)
		}
		if _, err := e.Clients.FindAgent(ctx, "AA_NONE"); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("unknown agent: %v", err)
		}
		if _, err := e.Clients.RegisterAgent(ctx, "bad id", agentPub("k")); err == nil {
			t.Fatal("an invalid agent id registered")
		}

		t1, err := e.Clients.IssueAgentToken(ctx, id1)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := e.Clients.AuthenticateAgentToken(ctx, t1); err != nil || a.ClientID != id1 || a.ID != "AA_ONE" {
			t.Fatalf("token: %+v, %v", a, err)
		}
		t2, err := e.Clients.IssueAgentToken(ctx, id1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Clients.AuthenticateAgentToken(ctx, t1); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("replaced token: %v", err)
		}
		// An ordinary client's credentials are no agent token.
		c, err := e.Clients.Create(ctx, clients.CreateParams{Name: "plain"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Clients.AuthenticateAgentToken(ctx, c.APIKey); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("an API key as agent token: %v", err)
		}
		if err := e.Clients.Disable(ctx, clients.AgentClientPrefix+"AA_ONE"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Clients.AuthenticateAgentToken(ctx, t2); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("disabled agent's token: %v", err)
		}
		if _, err := e.Clients.FindAgent(ctx, "AA_ONE"); !errors.Is(err, clients.ErrInvalidCredentials) {
			t.Fatalf("disabled agent found: %v", err)
		}
	})
}
