package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/internal/pacing"
	"github.com/lethe-privacy/lethe/internal/netguard"
)

// maxAnswerBytes caps what is read of an answer: an id, a token, a few
// statuses.
const maxAnswerBytes = 256 << 10

// maxRetryAfter caps a Retry-After the processor asks for; the pipeline's
// deadline still applies.
const maxRetryAfter = 2 * time.Hour

// Client is the HTTP client an API calls its processor through. It owns
// what every processor needs and no API should redo: the base URL, a
// timeout per call, no redirects (identities must not follow one), a cap
// on calls in flight, the target's call budget (Options.RateLimit), and
// the memory of a block: after a 429 no call leaves for this target until
// the processor's Retry-After has passed, whichever subject it is for.
type Client struct {
	name    string
	base    string
	timeout time.Duration
	http    *http.Client
	sem     chan struct{}
	now     func() time.Time
	// block is the wait a 429 or 503 without Retry-After imposes.
	block time.Duration

	mu           sync.Mutex
	blockedUntil time.Time
	window       *window
}

func newClient(name string, o Options, block time.Duration, now func() time.Time) *Client {
	g := o.guard
	if g == nil {
		g = netguard.Strict()
	}
	return &Client{
		name:    name,
		base:    strings.TrimRight(o.BaseURL, "/"),
		timeout: o.Timeout,
		sem:     make(chan struct{}, o.MaxConcurrency),
		now:     now,
		block:   block,
		window:  newWindow(o.RateLimit),
		http: &http.Client{
			// Only public addresses, and those of allow_hosts, are dialed.
			Transport:     g.Transport(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// NewClient checks o as New does, filling its defaults from def, and
// returns the client alone: for connectors that drive a processor's API
// themselves (package httprecipe) but keep this package's budget, blocks,
// netguard transport and error classification.
func NewClient(name string, o *Options, def Defaults, now func() time.Time) (*Client, error) {
	if err := o.check(def); err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	if def.Block <= 0 {
		def.Block = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return newClient(name, *o, def.Block, now), nil
}

// CloseIdleConnections releases the client's idle connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Call is one HTTP call to the processor.
type Call struct {
	// What names the endpoint in errors ("token endpoint"). URLs never
	// appear in errors.
	What   string
	Method string // default POST
	Path   string // appended to the base URL
	Header http.Header
	Body   []byte
}

// Response is one answer, read and closed.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do makes one call. A call the budget or a block does not allow now is not
// made: Do returns a *ThrottledError saying how long to wait.
func (c *Client) Do(ctx context.Context, call Call) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.Errorf("%s: %w", call.What, err)
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return nil, c.Errorf("%s: waiting for a free slot: %w", call.What, ctx.Err())
	}
	if err := c.admit(); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	method := call.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(cctx, method, c.base+call.Path, bytes.NewReader(call.Body))
	if err != nil {
		return nil, connector.Permanent(c.Errorf("%s: cannot build the request", call.What))
	}
	for k, v := range call.Header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" && call.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "lethe")
	res, err := c.http.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, c.Errorf("%s: %w", call.What, ctx.Err())
		case cctx.Err() != nil:
			return nil, c.Errorf("%s did not answer within %s", call.What, c.timeout)
		case errors.Is(err, netguard.ErrRefused):
			// Retrying will not change the address; the operator must.
			return nil, connector.Permanent(c.Errorf("%s refused: its address is not public and its host is not in allow_hosts", call.What))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, c.Errorf("%s unreachable: %v", call.What, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.Errorf("%s: %w", call.What, ctx.Err())
		}
		return nil, c.Errorf("%s: reading the answer: interrupted", call.What)
	}
	if len(b) > maxAnswerBytes {
		return nil, c.Errorf("%s answered more than %d bytes", call.What, maxAnswerBytes)
	}
	return &Response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// admit takes a slot of the budget, or says how long to wait for one.
func (c *Client) admit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Before(c.blockedUntil) {
		after := c.blockedUntil.Sub(now)
		return &ThrottledError{After: after, Reason: fmt.Sprintf("the processor blocked calls; waiting %s", after.Round(time.Second))}
	}
	if wait, ok := c.window.take(now); !ok {
		return &ThrottledError{After: wait, Reason: fmt.Sprintf("this target's rate limit (%s) is used up; next call in %s", c.window.rate, wait.Round(time.Second))}
	}
	return nil
}

// Errorf formats an error naming the target. Never pass identity values,
// credentials or URLs.
func (c *Client) Errorf(format string, args ...any) error {
	return fmt.Errorf("processor %q: "+format, append([]any{c.name}, args...)...)
}

// Classify turns an answer the API did not expect into the error the
// pipeline acts on: a *ThrottledError for 429 and 503 (Retry-After, or the
// API's default block), which also holds every call to this target back
// until then; a retryable error for 408 and 5xx; permanent for the rest
// (a 4xx is a request lethe must not repeat unchanged). detail, when not
// empty, is the processor's own message, already redacted by the API
// (package redact).
func (c *Client) Classify(what string, r *Response, detail string) error {
	if detail != "" {
		detail = ": " + detail
	}
	switch {
	case r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable:
		after, ok := pacing.RetryAfter(r.Header.Get("Retry-After"), c.now(), maxRetryAfter)
		if !ok {
			after = c.block
		}
		c.mu.Lock()
		if until := c.now().Add(after); until.After(c.blockedUntil) {
			c.blockedUntil = until
		}
		c.mu.Unlock()
		return &ThrottledError{After: after, Reason: fmt.Sprintf("%s answered %d; retrying after %s", what, r.Status, after.Round(time.Second))}
	case r.Status == http.StatusRequestTimeout || r.Status >= 500:
		return c.Errorf("%s answered %d%s", what, r.Status, detail)
	case r.Status >= 300 && r.Status < 400:
		return connector.Permanent(c.Errorf("%s answered a redirect (%d), which lethe does not follow", what, r.Status))
	default:
		return connector.Permanent(c.Errorf("%s answered %d%s", what, r.Status, detail))
	}
}

// ThrottledError says the processor (or this target's own budget) does not
// take calls now. The connector answers it with connector.Pending: waiting
// is not failing, and never done.
type ThrottledError struct {
	After  time.Duration
	Reason string // no identity values
}

func (e *ThrottledError) Error() string { return "throttled: " + e.Reason }

// window is a sliding-window log: at most rate.N calls in any interval of
// rate.Per. A processor's fixed window (the s2s contract's "50 per 10
// minutes") can then never see more than N in one of its windows, however
// the two are aligned.
type window struct {
	rate Rate
	at   []time.Time // ring of the last N call times
	next int
}

func newWindow(r Rate) *window {
	w := &window{rate: r}
	if !r.Unlimited() {
		w.at = make([]time.Time, r.N)
	}
	return w
}

// take records a call at now if the budget allows it, or returns how long
// until it will.
func (w *window) take(now time.Time) (time.Duration, bool) {
	if w.rate.Unlimited() {
		return 0, true
	}
	oldest := w.at[w.next] // the call N calls ago (zero while fewer were made)
	if !oldest.IsZero() && now.Sub(oldest) < w.rate.Per {
		return max(oldest.Add(w.rate.Per).Sub(now), time.Millisecond), false
	}
	w.at[w.next] = now
	w.next = (w.next + 1) % len(w.at)
	return 0, true
}
