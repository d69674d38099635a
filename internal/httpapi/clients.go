package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// DefaultRule is the native API's per-client limit (the admin counts as
// one client): 600 calls a minute, then blocked for a minute.
var DefaultRule = ratelimit.Rule{Limit: 600, Window: time.Minute, Block: time.Minute}

// RateLimitPrefix prefixes the native API's rate limit keys; the admin is
// counted under RateLimitPrefix + "admin".
const RateLimitPrefix = "native:"

// TokenVerifier checks the access tokens the connect profile issues;
// *clients.Service is one.
type TokenVerifier interface {
	AuthenticateToken(ctx context.Context, token string) (store.Token, error)
}

// ClientTokens accepts clients' bearer tokens (the access tokens issued by
// the connect profile's /v2/oauth/token) and answers
// auth.Principal{ClientID}; the native API then scopes every read to that
// client, so another client's request is a 404. Wrap it in auth.Limited to
// rate-limit each client, and put it in the chain after the admin token: a
// request without a bearer token, or with one it does not know, is EUNAUTH
// so the chain goes on.
func ClientTokens(v TokenVerifier) auth.Authenticator {
	return auth.AuthenticatorFunc(func(ctx context.Context, r *http.Request) (auth.Principal, error) {
		tok, ok := request.BearerToken(r)
		if !ok {
			return auth.Principal{}, auth.ErrUnauthorized()
		}
		t, err := v.AuthenticateToken(ctx, tok)
		if err != nil {
			if lethe.ErrorCode(err) == lethe.EUNAUTH {
				return auth.Principal{}, auth.ErrUnauthorized()
			}
			return auth.Principal{}, err
		}
		return auth.Principal{ClientID: t.ClientID}, nil
	})
}
