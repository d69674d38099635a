package processor

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe/connector"
)

const (
	// tokenEarly is the most a token is refreshed before it expires, so a
	// call never leaves with a token about to lapse in flight.
	tokenEarly = 5 * time.Minute
	// tokenDefaultTTL is assumed when the token answer has no expires_in.
	tokenDefaultTTL = 10 * time.Minute
)

// OAuthTokens holds one target's OAuth2 client-credentials access token,
// shared by every call of the target and fetched by one call at a time.
// The connect processor and HTTP recipes both use it; they differ only in
// how the token request is written.
type OAuthTokens struct {
	now   func() time.Time
	fetch chan struct{} // held while a token is fetched; a lock that honours ctx

	mu        sync.Mutex
	token     string
	refreshAt time.Time
}

// NewOAuthTokens returns an empty cache. now is the clock (nil: time.Now).
func NewOAuthTokens(now func() time.Time) *OAuthTokens {
	if now == nil {
		now = time.Now
	}
	return &OAuthTokens{now: now, fetch: make(chan struct{}, 1)}
}

// Bearer returns a token valid for a while yet, asking the token endpoint
// with the call request builds when none is. stale is a token the remote
// side just refused: it is never returned again, so a 401 leads to exactly
// one new token however many calls saw it. A refusal of the credentials
// (400, 401, 403) is permanent: retrying cannot mend them.
func (t *OAuthTokens) Bearer(ctx context.Context, c *Client, stale string, request func() Call) (string, error) {
	if tok, ok := t.cached(stale); ok {
		return tok, nil
	}
	select {
	case t.fetch <- struct{}{}:
		defer func() { <-t.fetch }()
	case <-ctx.Done():
		return "", c.Errorf("token endpoint: %w", ctx.Err())
	}
	if tok, ok := t.cached(stale); ok {
		return tok, nil // fetched by another call while this one waited
	}
	call := request()
	call.What = "token endpoint"
	issued := t.now()
	r, err := c.Do(ctx, call)
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		if r.Status == http.StatusBadRequest || r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
			return "", connector.Permanent(c.Errorf("%s refused the client credentials (%d)", call.What, r.Status))
		}
		return "", c.Classify(call.What, r, "")
	}
	var ans struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(r.Body, &ans); err != nil || ans.AccessToken == "" {
		return "", c.Errorf("%s answered %d without an access token", call.What, r.Status)
	}
	ttl := tokenDefaultTTL
	if ans.ExpiresIn > 0 {
		ttl = time.Duration(ans.ExpiresIn) * time.Second
	}
	// Refresh at 90% of the lifetime, at most tokenEarly before expiry:
	// the remote clock and the call's own duration are not ours.
	early := min(ttl/10, tokenEarly)
	t.mu.Lock()
	t.token, t.refreshAt = ans.AccessToken, issued.Add(ttl-early)
	t.mu.Unlock()
	return ans.AccessToken, nil
}

// Current is the token held now ("" before the first), for redacting it
// from what is stored.
func (t *OAuthTokens) Current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.token
}

func (t *OAuthTokens) cached(stale string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.token != stale && t.now().Before(t.refreshAt) {
		return t.token, true
	}
	return "", false
}
