package processor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/redact"
)

// KindS2S is the connector kind of processors speaking the "s2s" user
// deletion API (POST /user_deletion_requests, HMAC-signed).
const KindS2S = "processor-s2s"

// S2SOptions configure a processor-s2s target.
type S2SOptions struct {
	Options `yaml:",inline"`
	// APIKey goes in X-API-KEY. Required; give it as ${VAR}.
	APIKey string `yaml:"api_key"`
	// Secret is the shared secret the body is signed with. Required; give
	// it as ${VAR}.
	Secret string `yaml:"secret"`
}

// S2SDefaults are the contract's: user ids only, 50 calls per 10 minutes
// (exceeding it blocks the key for 10 minutes, which is also the wait
// after a 429 without Retry-After).
var S2SDefaults = Defaults{
	Identities: []lethe.IdentityType{lethe.IdentityUserID},
	RateLimit:  PerWindow(50, 10*time.Minute),
	Block:      10 * time.Minute,
}

// S2SInfo returns the registry entry for processor-s2s targets.
func S2SInfo() connector.Info {
	return connector.Info{Kind: KindS2S, New: func(_ context.Context, t connector.Target) (connector.Connector, error) {
		var o S2SOptions
		if err := t.DecodeOptions(&o); err != nil {
			return nil, err
		}
		return OpenS2S(t.Name, o)
	}}
}

// OpenS2S returns the connector for a processor-s2s target.
func OpenS2S(name string, o S2SOptions) (*Connector, error) {
	return openS2S(name, o, time.Now)
}

func openS2S(name string, o S2SOptions, now func() time.Time) (*Connector, error) {
	api, err := newS2S(o)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	return newConnector(name, o.Options, S2SDefaults, api, now)
}

// s2sAPI speaks the s2s contract: one signed POST per user id, answered
// with the processor's request id. It has no status endpoint.
type s2sAPI struct {
	apiKey string
	secret []byte
}

func newS2S(o S2SOptions) (*s2sAPI, error) {
	var errs []error
	if o.APIKey == "" {
		errs = append(errs, errors.New("api_key is required"))
	}
	if o.Secret == "" {
		errs = append(errs, errors.New("secret is required"))
	}
	return &s2sAPI{apiKey: o.APIKey, secret: []byte(o.Secret)}, errors.Join(errs...)
}

func (*s2sAPI) Object() string { return "user_deletion_requests" }

// S2SSign returns the Authorization value for body: the lower-case hex
// HMAC-SHA256 of the exact bytes sent, under the shared secret.
func S2SSign(body, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Submit POSTs {"user_id":"..."}. The processor answers an open request
// for the same user with that request's id, so a repeat after a crash is
// harmless.
func (a *s2sAPI) Submit(ctx context.Context, c *Client, id lethe.Identity) (string, error) {
	const what = "deletion endpoint"
	// Marshalled, not concatenated: the value is escaped, and these are
	// exactly the bytes signed and sent.
	body, _ := json.Marshal(struct {
		UserID string `json:"user_id"`
	}{id.Value})
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-API-KEY", a.apiKey)
	h.Set("Authorization", S2SSign(body, a.secret))
	r, err := c.Do(ctx, Call{What: what, Path: "/user_deletion_requests", Header: h, Body: body})
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		var e struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(r.Body, &e) // best effort: the status decides
		return "", c.Classify(what, r, redact.String(strings.Join(e.Errors, "; "), []lethe.Identity{id}))
	}
	var ok struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.Body, &ok); err != nil || ok.ID == "" || len(ok.ID) > 128 {
		return "", c.Errorf("%s answered %d without a request id", what, r.Status)
	}
	return ok.ID, nil
}
