package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/internal/pacing"
	"github.com/lethe-privacy/lethe/internal/netguard"
	"github.com/lethe-privacy/lethe/signature"
)

// Kind is the connector kind of webhook targets in the data map.
const Kind = "webhook"

// Info returns the registry entry for webhook targets.
func Info() connector.Info {
	return connector.Info{Kind: Kind, New: func(ctx context.Context, t connector.Target) (connector.Connector, error) {
		return New(ctx, t)
	}}
}

// maxAnswerBytes caps what is read of an answer: lethe needs a status, a
// URL and a few counts.
const maxAnswerBytes = 64 << 10

// maxRetryAfter caps a Retry-After the service asks for; the pipeline's
// deadline still applies.
const maxRetryAfter = time.Hour

// objectName is what a count's key may look like: it lands in reports and
// receipts, so it must be a name, not data.
var objectName = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)

// Connector forwards erasures to one internal service over signed HTTP.
type Connector struct {
	name    string
	o       Options
	erase   *url.URL
	secret  []byte
	allowed map[lethe.IdentityType]bool
	client  *http.Client
	sem     chan struct{} // one slot per call in flight
	now     func() time.Time
}

var (
	_ connector.Connector = (*Connector)(nil)
	_ connector.Completer = (*Connector)(nil)
	_ connector.Deadliner = (*Connector)(nil)
)

// New decodes and checks the target's options. It does not call the
// service.
func New(_ context.Context, t connector.Target) (*Connector, error) {
	var o Options
	if err := t.DecodeOptions(&o); err != nil {
		return nil, err
	}
	return Open(t.Name, o)
}

// Open is New for options already decoded.
func Open(name string, o Options) (*Connector, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("target %q: %w", name, err)
	}
	u, _ := url.Parse(o.URL) // checked
	c := &Connector{
		name:    name,
		o:       o,
		erase:   u,
		secret:  []byte(o.Secret),
		allowed: map[lethe.IdentityType]bool{},
		sem:     make(chan struct{}, o.MaxConcurrency),
		now:     time.Now,
		client: &http.Client{
			// Only public addresses, and those of allow_hosts, are dialed.
			Transport: o.guard.Transport(),
			// Identities travel in these calls: never to wherever a
			// redirect points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for _, t := range o.Identities {
		c.allowed[t] = true
	}
	return c, nil
}

// ConfirmWithin implements connector.Deadliner.
func (c *Connector) ConfirmWithin() time.Duration { return c.o.ConfirmWithin }

// AcceptsCallbacks implements connector.Completer.
func (c *Connector) AcceptsCallbacks() bool { return c.o.CallbackBaseURL != "" }

// callBody is what every call to the service carries.
type callBody struct {
	RequestID   string                          `json:"request_id"`
	Identities  map[lethe.IdentityType][]string `json:"identities"`
	CallbackURL string                          `json:"callback_url,omitempty"`
}

// answer is every answer the service may give; each endpoint uses its part.
type answer struct {
	Status    string           `json:"status"`
	Counts    map[string]int64 `json:"counts"`
	CheckURL  string           `json:"check_url"`
	Remaining map[string]int64 `json:"remaining"`
	Reason    string           `json:"reason"`
}

// checkpoint is what a pending erasure keeps between calls.
type checkpoint struct {
	CheckURL string `json:"check_url,omitempty"`
	Polls    int    `json:"polls"`
}

// body returns the call's body, or nil when the subject has no identity
// this service may receive.
func (c *Connector) body(s connector.Subject, withCallback bool) []byte {
	ids := map[lethe.IdentityType][]string{}
	for _, id := range s.Identities {
		if c.allowed[id.Type] {
			ids[id.Type] = append(ids[id.Type], id.Value)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b := callBody{RequestID: s.RequestID, Identities: ids}
	if withCallback && c.AcceptsCallbacks() && s.CallbackToken != "" {
		b.CallbackURL = strings.TrimRight(c.o.CallbackBaseURL, "/") + "/v1/tasks/" + url.PathEscape(s.CallbackToken) + "/complete"
	}
	// Map keys marshal sorted: a repeated call sends the same bytes, as
	// idempotency keys expect.
	out, _ := json.Marshal(b)
	return out
}

// response is one HTTP answer, read and closed.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do makes one signed call. what names the endpoint in errors ("erase
// endpoint"); URLs never appear in them, since a check URL may name the
// subject.
func (c *Connector) do(ctx context.Context, what, method, target, requestID string, body []byte) (*response, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("%s: %w", what, err)
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return nil, c.errorf("%s: waiting for a free slot: %w", what, ctx.Err())
	}
	cctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, connector.Permanent(c.errorf("%s: cannot build the request", what))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "lethe")
	req.Header.Set("Idempotency-Key", requestID)
	req.Header.Set(signature.Header, signature.Sign(c.now(), body, c.secret))
	res, err := c.client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, c.errorf("%s: %w", what, ctx.Err())
		case cctx.Err() != nil:
			return nil, c.errorf("%s did not answer within %s", what, c.o.Timeout)
		case errors.Is(err, netguard.ErrRefused):
			// Retrying will not change the address; the operator must.
			return nil, connector.Permanent(c.errorf("%s refused: its address is not public and its host is not in allow_hosts", what))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, c.errorf("%s unreachable: %v", what, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.errorf("%s: %w", what, ctx.Err())
		}
		return nil, c.errorf("%s: reading the answer: interrupted", what)
	}
	if len(b) > maxAnswerBytes {
		return nil, c.errorf("%s answered more than %d bytes", what, maxAnswerBytes)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}, nil
}

func (c *Connector) errorf(format string, args ...any) error {
	return fmt.Errorf("webhook %q: "+format, append([]any{c.name}, args...)...)
}

// classify turns a non-2xx answer into the error the pipeline acts on:
// Pending for throttling with Retry-After (waiting is not failing), a
// retryable error for 408 and 5xx, permanent for the rest.
func (c *Connector) classify(what string, r *response, s connector.Subject) error {
	switch {
	case r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable:
		if after, ok := pacing.RetryAfter(r.header.Get("Retry-After"), c.now(), maxRetryAfter); ok {
			return &connector.PendingError{
				After:      after,
				Checkpoint: s.Checkpoint, // unchanged: nothing new was accepted
				Reason:     fmt.Sprintf("%s answered %d; retrying after %s", what, r.status, after),
			}
		}
		return c.errorf("%s answered %d", what, r.status)
	case r.status == http.StatusRequestTimeout || r.status >= 500:
		return c.errorf("%s answered %d", what, r.status)
	case r.status >= 300 && r.status < 400:
		return connector.Permanent(c.errorf("%s answered a redirect (%d), which lethe does not follow", what, r.status))
	default:
		return connector.Permanent(c.errorf("%s answered %d", what, r.status))
	}
}

func (c *Connector) decode(what string, r *response) (answer, error) {
	var a answer
	if err := json.Unmarshal(r.body, &a); err != nil {
		return a, c.errorf("%s answered %d with a body that is not the expected JSON", what, r.status)
	}
	return a, nil
}

// report turns counts into report lines, sorted by object.
func (c *Connector) report(what string, counts map[string]int64, action lethe.Action) (lethe.Report, error) {
	var r lethe.Report
	for obj, n := range counts {
		if !objectName.MatchString(obj) || n < 0 {
			// The name is not quoted: it came from the service and could be anything.
			return lethe.Report{}, connector.Permanent(c.errorf("%s answered a count with an invalid object name or a negative number", what))
		}
		r.Items = append(r.Items, lethe.ReportItem{Object: obj, Action: action, Rows: n})
	}
	sort.Slice(r.Items, func(i, j int) bool { return r.Items[i].Object < r.Items[j].Object })
	return r, nil
}

// Resolve implements connector.Connector: a webhook target links nothing.
func (c *Connector) Resolve(ctx context.Context, _ connector.Subject) ([]lethe.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.errorf("resolve: %w", err)
	}
	return nil, nil
}

// Plan implements connector.Connector. With plan_url the service says what
// it would delete; without, the one line is "forward" with unknown (0)
// counts.
func (c *Connector) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.errorf("plan: %w", err)
	}
	body := c.body(s, false)
	if body == nil {
		return lethe.Report{}, nil
	}
	if c.o.PlanURL == "" {
		return lethe.Report{Items: []lethe.ReportItem{{
			Object: "service", Action: lethe.ActionForward,
			Reason: "counts are known once the service answers (configure plan_url to get them up front)",
		}}}, nil
	}
	const what = "plan endpoint"
	r, err := c.do(ctx, what, http.MethodPost, c.o.PlanURL, s.RequestID, body)
	if err != nil {
		return lethe.Report{}, err
	}
	if r.status != http.StatusOK {
		return lethe.Report{}, c.classify(what, r, s)
	}
	a, err := c.decode(what, r)
	if err != nil {
		return lethe.Report{}, err
	}
	return c.report(what, a.Counts, lethe.ActionDelete)
}

// Erase implements connector.Connector: the first call POSTs the erase
// call; while the service works on it, later calls poll its check_url (or,
// without one, repeat the erase call, which the idempotency key turns into
// a status query). Only a "done" answer ends it; everything the service
// may say while working is Pending.
func (c *Connector) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := ctx.Err(); err != nil {
		return lethe.Report{}, c.errorf("erase: %w", err)
	}
	body := c.body(s, true)
	if body == nil {
		return lethe.Report{}, nil // nothing this service may receive
	}
	var cp checkpoint
	if s.Checkpoint != "" {
		if err := json.Unmarshal([]byte(s.Checkpoint), &cp); err != nil {
			cp = checkpoint{} // not ours (a changed map): start over
		}
	}
	what, method, target, send := "erase endpoint", http.MethodPost, c.o.URL, body
	if cp.CheckURL != "" {
		what, method, target, send = "check URL", http.MethodGet, cp.CheckURL, nil
	}
	r, err := c.do(ctx, what, method, target, s.RequestID, send)
	if err != nil {
		return lethe.Report{}, err
	}
	if cp.CheckURL != "" && (r.status == http.StatusNotFound || r.status == http.StatusGone) {
		// The service forgot the job: send the erase call again.
		return lethe.Report{}, &connector.PendingError{
			After: c.o.PollInterval, Reason: fmt.Sprintf("check URL answered %d; sending the erase call again", r.status),
		}
	}
	if r.status != http.StatusOK && r.status != http.StatusAccepted {
		return lethe.Report{}, c.classify(what, r, s)
	}
	a, err := c.decode(what, r)
	if err != nil {
		return lethe.Report{}, err
	}
	status := strings.ToLower(a.Status)
	switch {
	case r.status == http.StatusOK && status == "done":
		return c.report(what, a.Counts, lethe.ActionDelete)
	case status == "failed":
		return lethe.Report{}, connector.Permanent(c.errorf("%s: the service reports that the erasure failed", what))
	case r.status == http.StatusAccepted || status == "pending" || status == "queued" || status == "accepted" || status == "processing":
		// Accepted, not done; a 202 is never done, whatever its body says.
		next := checkpoint{CheckURL: cp.CheckURL, Polls: cp.Polls + 1}
		if a.CheckURL != "" {
			u, err := c.checkURL(a.CheckURL)
			if err != nil {
				return lethe.Report{}, err
			}
			next.CheckURL = u
		}
		b, _ := json.Marshal(next)
		reason := "accepted; polling the check URL"
		if next.CheckURL == "" {
			reason = "accepted; waiting for the service to call back"
		}
		return lethe.Report{}, &connector.PendingError{After: pacing.Backoff(c.o.PollInterval, c.o.PollMax, cp.Polls), Checkpoint: string(b), Reason: reason}
	default:
		return lethe.Report{}, c.errorf("%s answered %d with an unexpected status", what, r.status)
	}
}

// checkURL resolves a check_url against the erase endpoint and refuses one
// on another origin: lethe sends signed calls there, so a service must not
// be able to point it elsewhere.
func (c *Connector) checkURL(raw string) (string, error) {
	u, err := c.erase.Parse(raw)
	if err != nil || u.Scheme != c.erase.Scheme || u.Host != c.erase.Host {
		return "", connector.Permanent(c.errorf("erase endpoint answered a check_url that is not on its own scheme and host"))
	}
	return u.String(), nil
}

// Verify implements connector.Connector. With verify_url the service says
// what is left; without, Verify trusts the "done" Erase required.
func (c *Connector) Verify(ctx context.Context, s connector.Subject) error {
	if err := ctx.Err(); err != nil {
		return c.errorf("verify: %w", err)
	}
	body := c.body(s, false)
	if body == nil || c.o.VerifyURL == "" {
		return nil
	}
	const what = "verify endpoint"
	r, err := c.do(ctx, what, http.MethodPost, c.o.VerifyURL, s.RequestID, body)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return c.classify(what, r, s)
	}
	a, err := c.decode(what, r)
	if err != nil {
		return err
	}
	left, err := c.report(what, a.Remaining, lethe.ActionDelete)
	if err != nil {
		return err
	}
	if n := left.Total(); n > 0 {
		var parts []string
		for _, it := range left.Items {
			if it.Rows > 0 {
				parts = append(parts, fmt.Sprintf("%s: %d", it.Object, it.Rows))
			}
		}
		return c.errorf("the service reports %d records left (%s)", n, strings.Join(parts, ", "))
	}
	return nil
}

// completionBody is what a service POSTs to its callback_url.
type completionBody struct {
	Status string           `json:"status"`
	Counts map[string]int64 `json:"counts"`
	Reason string           `json:"reason"`
}

// VerifyCompletion implements connector.Completer: the body must be signed
// with this target's secret, and say done or failed.
func (c *Connector) VerifyCompletion(h http.Header, body []byte) (connector.Completion, error) {
	if err := signature.Verify(c.secret, h.Get(signature.Header), body, c.now()); err != nil {
		return connector.Completion{}, lethe.Errorf(lethe.EUNAUTH, "%s: %v", signature.Header, err)
	}
	var b completionBody
	if err := json.Unmarshal(body, &b); err != nil {
		return connector.Completion{}, lethe.Errorf(lethe.EINVALID, "body must be {\"status\":\"done\"|\"failed\",\"counts\":{...}}")
	}
	switch strings.ToLower(b.Status) {
	case "done":
		r, err := c.report("callback", b.Counts, lethe.ActionDelete)
		if err != nil {
			return connector.Completion{}, lethe.Errorf(lethe.EINVALID, "counts must map object names (1-64 of A-Z a-z 0-9 _ . : / -) to non-negative integers")
		}
		return connector.Completion{Report: r}, nil
	case "failed":
		return connector.Completion{Failed: true, Reason: b.Reason}, nil
	default:
		// "pending" or "queued" is not a confirmation: nothing to record.
		return connector.Completion{}, lethe.Errorf(lethe.EINVALID, "status must be done or failed")
	}
}
