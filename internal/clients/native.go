package clients

import (
	"context"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// DefaultNativeRule is the native API's per-client limit when the rules
// given to NativeAuthenticator have no default: 600 calls a minute, refused
// until the minute ends.
var DefaultNativeRule = ratelimit.Rule{Limit: 600, Window: time.Minute}

// NativeAuthenticator accepts the native API's client bearer tokens (the
// access tokens issued by the connect profile's /v2/oauth/token) and
// answers Principal{ClientID}; the native API then scopes every read to
// that client, so another client's request is a 404.
//
// With a limiter, each authenticated client is also rate-limited under the
// key "native:<client id>" and rules (a zero rules.Default means
// DefaultNativeRule); a refused request gets
// httpapi.RateLimited, which the native API answers 429 with Retry-After.
// Limiting happens after authentication so that nobody can use up a
// client's allowance without its token. limiter nil means no limit.
//
// Put it in an httpapi.Chain after the admin authenticator: a request
// without a bearer token, or with one it does not know, is EUNAUTH so the
// chain goes on.
func (s *Service) NativeAuthenticator(limiter ratelimit.Limiter, rules ratelimit.Rules) httpapi.Authenticator {
	if rules.Default == (ratelimit.Rule{}) {
		rules.Default = DefaultNativeRule
	}
	return &nativeAuth{s: s, limiter: limiter, rules: rules}
}

type nativeAuth struct {
	s       *Service
	limiter ratelimit.Limiter
	rules   ratelimit.Rules
}

func (a *nativeAuth) Authenticate(ctx context.Context, r *http.Request) (httpapi.Principal, error) {
	tok, ok := httpapi.BearerToken(r)
	if !ok {
		return httpapi.Principal{}, lethe.Errorf(lethe.EUNAUTH, "missing or invalid bearer token")
	}
	t, err := a.s.AuthenticateToken(ctx, tok)
	if err != nil {
		if lethe.ErrorCode(err) == lethe.EUNAUTH {
			return httpapi.Principal{}, lethe.Errorf(lethe.EUNAUTH, "missing or invalid bearer token")
		}
		return httpapi.Principal{}, err
	}
	if a.limiter != nil {
		ok, retry, err := a.limiter.Allow(ctx, "native:"+t.ClientID, a.rules.For(t.ClientID))
		if err != nil {
			return httpapi.Principal{}, err
		}
		if !ok {
			return httpapi.Principal{}, httpapi.RateLimited(retry, "too many requests; retry later")
		}
	}
	return httpapi.Principal{ClientID: t.ClientID}, nil
}
