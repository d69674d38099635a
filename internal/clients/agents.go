package clients

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// DRP authorized agents are clients of a kind of their own: a client named
// AgentClientPrefix + the agent's id, holding the agent's Ed25519 verify
// key (sealed) and the pairwise bearer tokens issued to it (keyed hashes).
// Being clients, their requests are scoped, rate limited, disabled and
// listed like any other client's.

// AgentClientPrefix starts the client name of every DRP agent.
const AgentClientPrefix = "drp."

const domainAgentToken = "lethe/client/drp_agent_token"

// agentIDRE bounds an agent id so that the client name stays valid; the
// DRP directory's ids ([A-Z_]+) fit.
var agentIDRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,59}$`)

// ValidateAgentID reports whether id can name a DRP agent.
func ValidateAgentID(id string) error {
	if !agentIDRE.MatchString(id) {
		return lethe.Errorf(lethe.EINVALID, "agent id must be 1 to 60 letters, digits, '.', '_' or '-'")
	}
	return nil
}

// Agent is a registered DRP authorized agent.
type Agent struct {
	// ID is the agent's id in the DRP directory.
	ID       string
	ClientID string
	// VerifyKeys are the agent's current verify keys (more than one only
	// while a changed key is being registered by several processes).
	VerifyKeys []ed25519.PublicKey
}

// RegisterAgent makes sure the agent id exists as a client with verifyKey
// as its only verify key, creating the client or replacing an older key;
// it returns the client id. Registering the same key again changes
// nothing, so every process may register the directory at start.
func (s *Service) RegisterAgent(ctx context.Context, agentID string, verifyKey ed25519.PublicKey) (string, error) {
	if err := ValidateAgentID(agentID); err != nil {
		return "", err
	}
	if len(verifyKey) != ed25519.PublicKeySize {
		return "", lethe.Errorf(lethe.EINVALID, "agent %s: verify key must be %d bytes", agentID, ed25519.PublicKeySize)
	}
	name := AgentClientPrefix + agentID
	c, err := s.st.GetClientByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		created, cerr := s.Create(ctx, CreateParams{Name: name})
		if lethe.ErrorCode(cerr) == lethe.ECONFLICT {
			// Another process registered it at the same moment.
			c, err = s.st.GetClientByName(ctx, name)
		} else if cerr != nil {
			return "", cerr
		} else {
			c, err = &lethe.Client{ID: created.ID, Name: name}, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("register agent: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(verifyKey)
	now := s.clock()
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		creds, err := tx.ClientCredentials(ctx, c.ID, store.CredAgentVerifyKey, now)
		if err != nil {
			return err
		}
		if len(creds) == 1 && creds[0].Secret == key {
			return nil
		}
		if err := tx.ExpireCredentials(ctx, c.ID, store.CredAgentVerifyKey, now); err != nil {
			return err
		}
		return tx.AddCredential(ctx, store.Credential{ClientID: c.ID, Kind: store.CredAgentVerifyKey, Secret: key, CreatedAt: now})
	})
	if err != nil {
		return "", fmt.Errorf("register agent: %w", err)
	}
	return c.ID, nil
}

// FindAgent returns the enabled agent registered as agentID, or
// ErrInvalidCredentials.
func (s *Service) FindAgent(ctx context.Context, agentID string) (Agent, error) {
	if ValidateAgentID(agentID) != nil {
		return Agent{}, ErrInvalidCredentials
	}
	c, err := s.st.GetClientByName(ctx, AgentClientPrefix+agentID)
	if errors.Is(err, store.ErrNotFound) {
		return Agent{}, ErrInvalidCredentials
	}
	if err != nil {
		return Agent{}, fmt.Errorf("find agent: %w", err)
	}
	if c.Disabled {
		return Agent{}, ErrInvalidCredentials
	}
	return s.agent(ctx, c)
}

func (s *Service) agent(ctx context.Context, c *lethe.Client) (Agent, error) {
	clientID := c.ID
	creds, err := s.st.ClientCredentials(ctx, clientID, store.CredAgentVerifyKey, s.clock())
	if err != nil {
		return Agent{}, fmt.Errorf("agent keys: %w", err)
	}
	a := Agent{ID: strings.TrimPrefix(c.Name, AgentClientPrefix), ClientID: clientID}
	for _, c := range creds {
		k, err := base64.StdEncoding.DecodeString(c.Secret)
		if err == nil && len(k) == ed25519.PublicKeySize {
			a.VerifyKeys = append(a.VerifyKeys, ed25519.PublicKey(k))
		}
	}
	if len(a.VerifyKeys) == 0 {
		return Agent{}, ErrInvalidCredentials
	}
	return a, nil
}

// IssueAgentToken makes a new pairwise bearer token for the agent's
// client; tokens issued before stop working, since an agent asks again
// only when it has lost or distrusts the one it had.
func (s *Service) IssueAgentToken(ctx context.Context, clientID string) (string, error) {
	token := seal.RandomToken(tokenBytes)
	now := s.clock()
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.ExpireCredentials(ctx, clientID, store.CredAgentToken, now); err != nil {
			return err
		}
		return tx.AddCredential(ctx, store.Credential{
			ClientID: clientID, Kind: store.CredAgentToken, Hash: s.keys.Hash(domainAgentToken, token), CreatedAt: now,
		})
	})
	if err != nil {
		return "", fmt.Errorf("issue agent token: %w", err)
	}
	return token, nil
}

// AuthenticateAgentToken returns the agent a pairwise bearer token was
// issued to. An unknown or replaced token, or one of a disabled agent, is
// ErrInvalidCredentials. The token is found by its keyed hash, so the
// lookup's timing tells nothing about how close a guess was.
func (s *Service) AuthenticateAgentToken(ctx context.Context, token string) (Agent, error) {
	if token == "" || len(token) > MaxCredentialLen {
		return Agent{}, ErrInvalidCredentials
	}
	cred, err := s.st.FindCredential(ctx, store.CredAgentToken, s.keys.Hash(domainAgentToken, token), s.clock())
	if errors.Is(err, store.ErrNotFound) {
		return Agent{}, ErrInvalidCredentials
	}
	if err != nil {
		return Agent{}, fmt.Errorf("find agent token: %w", err)
	}
	c, err := s.st.GetClient(ctx, cred.ClientID)
	if err != nil {
		return Agent{}, fmt.Errorf("agent token: %w", err)
	}
	if c.Disabled || !strings.HasPrefix(c.Name, AgentClientPrefix) {
		return Agent{}, ErrInvalidCredentials
	}
	return s.agent(ctx, c)
}
