package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe/internal/netguard"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/signature"
)

// Delivery of status events to a request's callback_url: at least once,
// retried with backoff within a window, signed, and never to a host or
// address the configuration refuses.

// Defaults of CallbackConfig.
const (
	DefaultCallbackWindow      = 24 * time.Hour
	DefaultCallbackTimeout     = 10 * time.Second
	DefaultCallbackBackoffBase = 10 * time.Second
	DefaultCallbackBackoffMax  = time.Hour
	DefaultCallbackWorkers     = 4
)

// CallbackConfig tunes callback delivery. Every field states its default.
type CallbackConfig struct {
	// Window is how long after the status change delivery is retried;
	// then the event is abandoned. Default 24h.
	Window time.Duration
	// Timeout bounds one attempt: connecting, sending and reading the
	// answer. Default 10s.
	Timeout time.Duration
	// BackoffBase and BackoffMax shape the wait between attempts, doubled
	// per failure with jitter. Defaults 10s and 1h.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Workers is how many deliveries run at once. They have a queue of
	// their own, so slow receivers never hold up erasure. Default 4.
	Workers int
	// AdminSecret signs the callbacks of requests the admin submitted
	// (client requests are signed with the client's HMAC shared secret).
	// Empty: such events are not delivered and their attempts say
	// "no_signing_secret".
	AdminSecret string
	// AllowHosts, when not empty, is the only hosts callbacks may go to
	// (exact host names, case-insensitive; "*.example.com" for
	// subdomains). Events for other hosts are abandoned at once.
	AllowHosts []string
	// Guard decides which addresses deliveries may connect to, checked on
	// every address actually dialed (so DNS answers and redirects cannot
	// get around it). Nil: public addresses only (netguard.Strict).
	Guard *netguard.Guard
	// Transport, when set, replaces the HTTP transport (tests). The
	// Guard applies only to the default.
	Transport http.RoundTripper
	// Formats render and sign the events of requests whose
	// CallbackFormat names them (the DRP and OpenDSR profiles'); those
	// events are not signed with an HMAC secret. Default none.
	Formats map[string]CallbackFormat
}

func (c CallbackConfig) withDefaults() CallbackConfig {
	if c.Window == 0 {
		c.Window = DefaultCallbackWindow
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultCallbackTimeout
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultCallbackBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultCallbackBackoffMax
	}
	if c.Workers == 0 {
		c.Workers = DefaultCallbackWorkers
	}
	return c
}

func (c CallbackConfig) validate() error {
	var errs []error
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("Callbacks.Window must be positive, got %s", c.Window))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("Callbacks.Timeout must be positive, got %s", c.Timeout))
	}
	if c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("Callbacks.BackoffBase (%s) must be positive and at most BackoffMax (%s)", c.BackoffBase, c.BackoffMax))
	}
	if c.Workers < 1 || c.Workers > 1000 {
		errs = append(errs, fmt.Errorf("Callbacks.Workers must be 1..1000, got %d", c.Workers))
	}
	for _, h := range c.AllowHosts {
		if strings.TrimPrefix(h, "*.") == "" || strings.ContainsAny(h, "/:@ ") {
			errs = append(errs, fmt.Errorf("Callbacks.AllowHosts: %q is not a host name", h))
		}
	}
	return errors.Join(errs...)
}

const (
	kindCallback   = "lethe.callback"
	queueCallbacks = "lethe_callbacks"
	// priorityCallback: within their own queue all callbacks are equal.
	priorityCallback = 1
	// maxResponseRead is how much of a receiver's answer is read (and
	// thrown away, so the connection can be reused). Nothing of it is
	// stored.
	maxResponseRead = 4 << 10
	// maxRedirects to the same host; a redirect elsewhere is refused.
	maxRedirects = 3
)

type callbackArgs struct {
	EventID string `json:"event_id"`
}

func (callbackArgs) Kind() string { return kindCallback }

func callbackJob(eventID string) river.InsertManyParams {
	return river.InsertManyParams{Args: callbackArgs{EventID: eventID}, InsertOpts: &river.InsertOpts{
		MaxAttempts: riverMaxAttempts,
		Priority:    priorityCallback,
		Queue:       queueCallbacks,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}}
}

type callbackWorker struct {
	river.WorkerDefaults[callbackArgs]
	p *Pipeline
}

func (w *callbackWorker) Work(ctx context.Context, job *river.Job[callbackArgs]) error {
	return w.p.deliverCallback(ctx, job.JobRow, job.Args.EventID)
}

// NextRetry spaces attempts by the callback backoff rather than the
// pipeline's: a receiver that is down for an hour should see a handful of
// attempts, not hundreds.
func (w *callbackWorker) NextRetry(job *river.Job[callbackArgs]) time.Time {
	c := w.p.cfg.Callbacks
	return time.Now().Add(retryPolicy{base: c.BackoffBase, max: c.BackoffMax}.delay(job.Attempt))
}

// Error classes recorded for failed attempts. They say what kind of thing
// went wrong without quoting the receiver (whose answer could hold
// anything) or the URL.
const (
	classTimeout       = "timeout"
	classDNS           = "dns"
	classConnect       = "connect"
	classTLS           = "tls"
	classRedirect      = "redirect"
	classForbiddenAddr = "forbidden_address"
	classForbiddenHost = "forbidden_host"
	classHTTPStatus    = "http_status"
	classNoSecret      = "no_signing_secret"
	classRequest       = "request"
)

// deliverCallback makes one delivery attempt of an event.
func (p *Pipeline) deliverCallback(ctx context.Context, job *rivertype.JobRow, eventID string) error {
	cfg := p.cfg.Callbacks
	ev, err := p.st.GetCallbackEvent(ctx, eventID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // its request was purged
	}
	if err != nil {
		return fmt.Errorf("callback: %w", err)
	}
	if ev.State != store.CallbackPending {
		return nil // a duplicate job, or a rerun after the outcome committed
	}
	bctx, cancel := detached(ctx)
	defer cancel()
	if p.now().Sub(ev.CreatedAt) >= cfg.Window {
		return p.endCallback(bctx, job, ev, nil, store.CallbackAbandoned)
	}

	at := p.now()
	began := time.Now()
	status, class := p.postCallback(ctx, ev)
	a := store.CallbackAttempt{Time: at, Duration: time.Since(began), HTTPStatus: status, Error: class}
	switch {
	case class == "":
		return p.endCallback(bctx, job, ev, &a, store.CallbackDelivered)
	case class == classForbiddenHost || p.now().Sub(ev.CreatedAt) >= cfg.Window:
		// The allow-list will not change its mind on a retry; the window
		// is over.
		return p.endCallback(bctx, job, ev, &a, store.CallbackAbandoned)
	}
	n, err := p.st.RecordCallbackAttempt(bctx, ev.ID, a)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil // ended or purged meanwhile
	}
	if err != nil {
		return fmt.Errorf("callback %s: %w", ev.ID, err)
	}
	// The class and status only: River stores this message.
	if status != 0 {
		return fmt.Errorf("callback %s attempt %d: %s %d", ev.ID, n, class, status)
	}
	return fmt.Errorf("callback %s attempt %d: %s", ev.ID, n, class)
}

// endCallback records the last attempt (if any), ends the event and
// completes the job in one transaction.
func (p *Pipeline) endCallback(ctx context.Context, job *rivertype.JobRow, ev *store.CallbackEvent, a *store.CallbackAttempt, state store.CallbackState) error {
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		if a != nil {
			if _, err := tx.RecordCallbackAttempt(ctx, ev.ID, *a); errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				return p.eng.completeTx(ctx, tx, job)
			} else if err != nil {
				return err
			}
		}
		if _, err := tx.EndCallbackEvent(ctx, ev.ID, state, p.now()); err != nil {
			return err
		}
		return p.eng.completeTx(ctx, tx, job)
	})
	if err != nil {
		return fmt.Errorf("callback %s: %w", ev.ID, err)
	}
	if state == store.CallbackAbandoned {
		p.log.Warn("pipeline: callback abandoned", slog.String("request_id", ev.RequestID),
			slog.String("event_id", ev.ID), slog.String("status", string(ev.Status)))
	}
	return nil
}

// callbackSecrets returns the secrets that sign an event, newest first:
// the client's unexpired HMAC shared secrets (during a rotation's overlap
// there are two, and the receiver may still hold the old one), or the
// deployment's admin callback secret.
func (p *Pipeline) callbackSecrets(ctx context.Context, clientID string) ([]string, error) {
	if clientID == "" {
		if p.cfg.Callbacks.AdminSecret == "" {
			return nil, nil
		}
		return []string{p.cfg.Callbacks.AdminSecret}, nil
	}
	creds, err := p.st.ClientCredentials(ctx, clientID, store.CredHMACSecret, p.now())
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(creds, func(a, b store.Credential) int { return b.CreatedAt.Compare(a.CreatedAt) })
	var out []string
	for _, c := range creds {
		if c.Secret != "" {
			out = append(out, c.Secret)
		}
	}
	return out, nil
}

// SignCallback returns the X-Lethe-Signature value for body at t: one
// v1 per secret (package signature).
func SignCallback(t time.Time, body []byte, secrets ...string) string {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return signature.Sign(t, body, keys...)
}

// postCallback sends one attempt and returns the HTTP status (0 when no
// answer came) and the error class ("" for a 2xx).
func (p *Pipeline) postCallback(ctx context.Context, ev *store.CallbackEvent) (int, string) {
	cfg := p.cfg.Callbacks
	u, err := url.Parse(ev.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, classRequest
	}
	if !hostAllowed(cfg.AllowHosts, u.Hostname()) {
		return 0, classForbiddenHost
	}
	body, h := ev.Body, http.Header{}
	// Reminders are lethe's own events, signed like the admin's below.
	if ev.Format != "" && ev.Format != store.CallbackFormatReminder {
		f := cfg.Formats[ev.Format]
		if f == nil {
			return 0, classNoSecret
		}
		if body, err = f.Prepare(ev.Body, ev.URL, h); err != nil {
			p.log.Error("pipeline: callback format", slog.String("event_id", ev.ID), slog.String("format", ev.Format), slog.String("error", err.Error()))
			return 0, classNoSecret
		}
	} else {
		secrets, err := p.callbackSecrets(ctx, ev.ClientID)
		if err != nil {
			p.log.Error("pipeline: callback secrets", slog.String("event_id", ev.ID), slog.String("error", err.Error()))
			return 0, classNoSecret
		}
		if len(secrets) == 0 {
			return 0, classNoSecret
		}
		h.Set(signature.Header, SignCallback(time.Now(), ev.Body, secrets...))
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ev.URL, bytes.NewReader(body))
	if err != nil {
		return 0, classRequest
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lethe-callbacks/1")
	req.Header.Set("X-Lethe-Event-Id", ev.ID)
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := p.callbackClient.Do(req)
	if err != nil {
		return 0, classifyCallbackError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, ""
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return resp.StatusCode, classRedirect
	}
	return resp.StatusCode, classHTTPStatus
}

// hostAllowed reports whether host is on the allow-list (or the list is
// empty).
func hostAllowed(allow []string, host string) bool {
	if len(allow) == 0 {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range allow {
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

// errRedirect marks the client's refusal of a redirect so it can be
// classified (netguard.ErrRefused marks its refusal of an address).
var errRedirect = errors.New("redirect refused")

func classifyCallbackError(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, errRedirect):
		return classRedirect
	case errors.Is(err, netguard.ErrRefused):
		return classForbiddenAddr
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return classTimeout
	case errors.As(err, &dnsErr):
		return classDNS
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recErr):
		return classTLS
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), isDial(err):
		return classConnect
	default:
		return classRequest
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// newCallbackClient builds the HTTP client of deliveries: bounded by the
// attempt's context, following redirects only to the same host (and
// never from https to http), and refusing the addresses cfg.Guard refuses
// at dial time.
func newCallbackClient(cfg CallbackConfig) *http.Client {
	rt := cfg.Transport
	if rt == nil {
		g := cfg.Guard
		if g == nil {
			g = netguard.Strict()
		}
		tr := g.Transport()
		tr.TLSHandshakeTimeout = cfg.Timeout
		tr.ResponseHeaderTimeout = cfg.Timeout
		tr.MaxResponseHeaderBytes = 16 << 10
		rt = tr
	}
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			first := via[0].URL
			// A 301/302/303 turns the POST into a GET without the body;
			// only 307 and 308 keep it.
			if len(via) > maxRedirects || req.Method != http.MethodPost || !strings.EqualFold(req.URL.Host, first.Host) ||
				(first.Scheme == "https" && req.URL.Scheme != "https") {
				return errRedirect
			}
			return nil
		},
	}
}

// publicAddr reports whether ip is a public internet address.
func publicAddr(ip netip.Addr) bool { return netguard.Public(ip) }
