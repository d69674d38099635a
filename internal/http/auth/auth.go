// Package auth holds the authentication pieces lethe's API surfaces share:
// who a request acts for (Principal), authenticators and their chain, the
// admin token, a per-principal rate limit, and the throttle of failed
// sign-ins. Credentials are compared in constant time and never logged.
// It imports no API surface.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/http/response"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Principal is who an authenticated request acts for: the admin (sees and
// may do everything) or one client (sees only its own requests).
//
// Operator is set for operators (the admin token included): who acts and
// with which role. Admin is true for every operator, since operators see
// every request; what each may change is its role's (operators.Role).
type Principal struct {
	Admin    bool
	ClientID string
	Operator operators.Principal
}

// Scope is what the principal may see in the store.
func (p Principal) Scope() store.Scope {
	if p.Admin {
		return store.Scope{All: true}
	}
	return store.Scope{ClientID: p.ClientID}
}

// Actor is how the principal appears in audit events: a client with its
// id, a named operator with its name, the admin token as the admin.
func (p Principal) Actor() (lethe.Actor, string) {
	if p.Admin {
		if p.Operator.Name == "" {
			return lethe.ActorAdmin, ""
		}
		return p.Operator.Actor()
	}
	return lethe.ActorClient, p.ClientID
}

// valid reports whether p names somebody. A zero Principal would scope to
// nothing and submit as the admin, so it is refused rather than trusted.
func (p Principal) valid() bool { return p.Admin || p.ClientID != "" }

// Authenticator turns a request's credentials into a Principal.
//
// It returns an error with code EUNAUTH when the request carries no
// credentials it recognises or they are wrong; a chain then tries the next
// authenticator. Any other error (the store is down, the caller is rate
// limited) ends the chain and is answered as it is.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (Principal, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, r *http.Request) (Principal, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	return f(ctx, r)
}

// ErrUnauthorized is the error of a bearer token nobody recognises.
func ErrUnauthorized() error {
	return lethe.Errorf(lethe.EUNAUTH, "missing or invalid bearer token")
}

// Chain tries each authenticator in order and returns the first principal.
// With none configured, or none accepting, every request is unauthorized:
// an empty chain never means "no auth".
func Chain(auths ...Authenticator) Authenticator {
	return chain(auths)
}

type chain []Authenticator

func (c chain) Authenticate(ctx context.Context, r *http.Request) (Principal, error) {
	for _, a := range c {
		p, err := a.Authenticate(ctx, r)
		if err == nil {
			if !p.valid() {
				return Principal{}, lethe.Errorf(lethe.EINTERNAL, "authenticator returned an empty principal")
			}
			return p, nil
		}
		if lethe.ErrorCode(err) != lethe.EUNAUTH {
			return Principal{}, err
		}
	}
	return Principal{}, ErrUnauthorized()
}

// AdminToken authenticates the admin by a static bearer token. An empty
// token disables admin access (every request is unauthorized) so a missing
// setting can never open the API.
func AdminToken(token string) Authenticator {
	token = strings.TrimSpace(token)
	if token == "" {
		return AuthenticatorFunc(func(context.Context, *http.Request) (Principal, error) {
			return Principal{}, ErrUnauthorized()
		})
	}
	return adminToken(sha256.Sum256([]byte(token)))
}

// adminToken holds the SHA-256 of the token: comparing fixed-size digests
// in constant time leaks neither the content nor the length of the token.
type adminToken [sha256.Size]byte

func (a adminToken) Authenticate(_ context.Context, r *http.Request) (Principal, error) {
	tok, ok := request.BearerToken(r)
	if !ok {
		return Principal{}, ErrUnauthorized()
	}
	sum := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(sum[:], a[:]) != 1 {
		return Principal{}, ErrUnauthorized()
	}
	return Principal{Admin: true, Operator: operators.AdminToken}, nil
}

// OperatorVerifier checks operator tokens; *operators.Service is one.
type OperatorVerifier interface {
	Authenticate(ctx context.Context, token string) (operators.Principal, error)
}

// OperatorTokens accepts named operators' bearer tokens. An operator sees
// every request (Admin) and may change what its role allows, which each
// route checks. A request without a bearer token, or with one that is not
// an operator's, is EUNAUTH so the chain goes on; put it before the
// client tokens, whose lookup it spares.
func OperatorTokens(v OperatorVerifier) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, r *http.Request) (Principal, error) {
		tok, ok := request.BearerToken(r)
		if !ok || !operators.IsToken(tok) {
			return Principal{}, ErrUnauthorized()
		}
		op, err := v.Authenticate(ctx, tok)
		if err != nil {
			if lethe.ErrorCode(err) == lethe.EUNAUTH {
				return Principal{}, ErrUnauthorized()
			}
			return Principal{}, err
		}
		return Principal{Admin: true, Operator: op}, nil
	})
}

// Limited rate-limits the principals a accepts: each under the key
// prefix + client id ("admin" for the admin, counted like one client) and
// rules.For(client id). A refused request gets response.RateLimited, which
// every surface answers 429 with Retry-After. Limiting happens after
// authentication so that nobody can use up a client's allowance without
// its credentials; a's failures pass through unchanged.
func Limited(a Authenticator, limiter ratelimit.Limiter, prefix string, rules ratelimit.Rules) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, r *http.Request) (Principal, error) {
		p, err := a.Authenticate(ctx, r)
		if err != nil {
			return Principal{}, err
		}
		if err := Allow(ctx, limiter, prefix, p, rules); err != nil {
			return Principal{}, err
		}
		return p, nil
	})
}

// Allow counts one request of p under prefix and rules and returns a
// *response.RateLimitError when it is over its limit.
func Allow(ctx context.Context, limiter ratelimit.Limiter, prefix string, p Principal, rules ratelimit.Rules) error {
	who := p.ClientID
	switch {
	case p.Admin && p.Operator.Name != "" && p.Operator.Name != operators.AdminTokenName:
		// Each named operator is counted apart: one busy reviewer must
		// not use up the automation's allowance.
		who = "operator:" + p.Operator.Name
	case p.Admin:
		who = "admin"
	}
	ok, retry, err := limiter.Allow(ctx, prefix+who, rules.For(p.ClientID))
	if err != nil {
		return err
	}
	if !ok {
		return response.RateLimited(retry, "too many requests; retry later")
	}
	return nil
}
