package auth

import (
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/http/response"
)

// FailureRule is how many failed sign-ins a key may have within Window
// before it is refused, unheard, for Block.
type FailureRule struct {
	Failures int
	Window   time.Duration
	Block    time.Duration
}

// Defaults of the failed sign-in throttle. A client key is one client's
// (its client_id or API key): ten wrong secrets a minute is far beyond a
// misconfiguration and far below a guessing attack. A source address may
// be a NAT or proxy in front of several clients, so it gets more.
var (
	DefaultFailuresPerKey  = FailureRule{Failures: 10, Window: time.Minute, Block: time.Minute}
	DefaultFailuresPerAddr = FailureRule{Failures: 30, Window: time.Minute, Block: time.Minute}
)

// maxThrottleKeys bounds the memory the throttle holds: an attacker
// spraying made-up client keys from many addresses cannot grow it without
// limit. Past it, new keys share one overflow key, which then throttles
// the spray as a whole.
const maxThrottleKeys = 100_000

// Throttle refuses sign-ins after too many failures, per client key and
// per source address.
//
// Its counts live in the memory of the process: each lethe node throttles
// on its own, so behind a load balancer over n nodes an attacker gets at
// most n times the allowance, still a few dozen guesses a minute instead
// of hundreds a second. A restart forgets the counts. Keys are held as
// SHA-256 digests, never as the credentials themselves.
//
// A surface calls Check before it verifies credentials (a blocked key is
// refused even with the right secret, so a guess made while blocked tells
// nothing) and Fail after a failed verification.
type Throttle struct {
	perKey, perAddr FailureRule
	now             func() time.Time

	mu         sync.Mutex
	seen       map[[sha256.Size]byte]*failures
	lastForget time.Time
}

type failures struct {
	count        int
	windowStart  time.Time
	blockedUntil time.Time
}

// NewThrottle returns a Throttle with rules per client key and per source
// address (zero rules take the defaults above) on the clock now (nil:
// time.Now).
func NewThrottle(perKey, perAddr FailureRule, now func() time.Time) *Throttle {
	if perKey == (FailureRule{}) {
		perKey = DefaultFailuresPerKey
	}
	if perAddr == (FailureRule{}) {
		perAddr = DefaultFailuresPerAddr
	}
	if now == nil {
		now = time.Now
	}
	return &Throttle{perKey: perKey, perAddr: perAddr, now: now, seen: map[[sha256.Size]byte]*failures{}}
}

// Attempt names what a sign-in is counted under: the surface (so that one
// surface's failures do not block another's clients), the client key when
// the request names one ("" when it does not, as with a bearer token), and
// the source address of r.
type Attempt struct {
	surface, clientKey, addr string
}

// AttemptOf returns the Attempt of r on surface with clientKey.
func AttemptOf(r *http.Request, surface, clientKey string) Attempt {
	return Attempt{surface: surface, clientKey: clientKey, addr: request.ClientAddr(r)}
}

func (a Attempt) keys(t *Throttle) []throttleKey {
	ks := []throttleKey{{digest: sha256.Sum256([]byte(a.surface + "\x00addr\x00" + a.addr)), rule: t.perAddr}}
	if a.clientKey != "" {
		ks = append(ks, throttleKey{digest: sha256.Sum256([]byte(a.surface + "\x00key\x00" + a.clientKey)), rule: t.perKey})
	}
	return ks
}

type throttleKey struct {
	digest [sha256.Size]byte
	rule   FailureRule
}

// Check returns a *response.RateLimitError while the attempt's client key
// or source address is blocked, else nil.
func (t *Throttle) Check(a Attempt) error {
	return t.each(a, func(k throttleKey, now time.Time) time.Duration {
		if f := t.seen[k.digest]; f != nil && now.Before(f.blockedUntil) {
			return f.blockedUntil.Sub(now)
		}
		return 0
	})
}

// each calls fn, under the lock, for each key of a, and returns a
// *response.RateLimitError for the longest wait fn returns, if any.
func (t *Throttle) each(a Attempt, fn func(k throttleKey, now time.Time) time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range a.keys(t) {
		wait = max(wait, fn(k, now))
	}
	if wait > 0 {
		return errThrottled(wait)
	}
	return nil
}

// Fail records one failed sign-in of the attempt. It returns a
// *response.RateLimitError when this failure blocked its key or address,
// so the caller answers 429 rather than its usual refusal; else nil.
func (t *Throttle) Fail(a Attempt) error {
	return t.each(a, func(k throttleKey, now time.Time) time.Duration {
		f := t.entry(k.digest, now)
		if now.Sub(f.windowStart) >= k.rule.Window {
			f.count, f.windowStart = 0, now
		}
		f.count++
		if f.count < k.rule.Failures {
			return 0
		}
		f.blockedUntil = now.Add(k.rule.Block)
		f.count, f.windowStart = 0, f.blockedUntil
		return k.rule.Block
	})
}

// entry returns the failures of digest, making room when the map is full.
func (t *Throttle) entry(digest [sha256.Size]byte, now time.Time) *failures {
	if f, ok := t.seen[digest]; ok {
		return f
	}
	// A sweep walks the whole map: at most one a second, so a spray of
	// new keys cannot make every failure pay for one.
	if len(t.seen) >= maxThrottleKeys && now.Sub(t.lastForget) >= time.Second {
		t.lastForget = now
		t.forget(now)
	}
	if len(t.seen) >= maxThrottleKeys {
		digest = sha256.Sum256([]byte("\x00overflow"))
		if f, ok := t.seen[digest]; ok {
			return f
		}
	}
	f := &failures{windowStart: now}
	t.seen[digest] = f
	return f
}

// forget drops every key that is neither blocked nor inside a window.
func (t *Throttle) forget(now time.Time) {
	longest := max(t.perKey.Window, t.perAddr.Window)
	for d, f := range t.seen {
		if !now.Before(f.blockedUntil) && now.Sub(f.windowStart) >= longest {
			delete(t.seen, d)
		}
	}
}

func errThrottled(wait time.Duration) error {
	return response.RateLimited(wait, "too many failed sign-ins; retry later")
}

// Throttled puts a behind t: a request from a blocked source address is
// refused before a sees it, and each EUNAUTH of a is counted as a failure
// of the address (bearer tokens name no client, so the address is the
// only key). Put it around a whole Chain, so that one wrong token counts
// once.
func Throttled(a Authenticator, t *Throttle, surface string) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, r *http.Request) (Principal, error) {
		at := AttemptOf(r, surface, "")
		if err := t.Check(at); err != nil {
			return Principal{}, err
		}
		p, err := a.Authenticate(ctx, r)
		if lethe.ErrorCode(err) == lethe.EUNAUTH {
			if terr := t.Fail(at); terr != nil {
				return Principal{}, terr
			}
		}
		return p, err
	})
}
