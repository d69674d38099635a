package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// DefaultSessionTTL is how long a sign-in lasts: a working day, after
// which the operator signs in again.
const DefaultSessionTTL = 8 * time.Hour

// Target is a configured target as the admin pages show it.
type Target struct {
	Name string
	Kind string
}

// Deadlines counts open requests due soon and overdue.
type Deadlines func(ctx context.Context) (dueSoon, overdue int64, err error)

// Options configures a Console.
type Options struct {
	// Store reads requests, tasks, audit events, receipts and the
	// register, and keeps sessions and imports. Required.
	Store store.Store
	// Operators signs operators in. Required.
	Operators *operators.Service
	// Intake submits imported requests. Required.
	Intake *intake.Service
	// Keys seal an upload's validated rows between the report and the
	// confirmation. Required.
	Keys *seal.Keyring
	// Actions are the operator actions on requests (the pipeline's).
	// Nil: request pages show no action.
	Actions Actions
	// Clients manages partners on the admin pages. Nil: not shown.
	Clients *clients.Service
	// Targets are the data map's targets, for the admin pages.
	Targets []Target
	// Deadlines counts due-soon and overdue requests. Nil: not shown.
	Deadlines Deadlines
	// Throttle counts failed sign-ins per operator name and per address.
	// Default: a new auth.Throttle with its default rules.
	Throttle *auth.Throttle
	// SessionTTL is how long a sign-in lasts. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// NodeID names this process as the holder of import leases.
	// Required when several nodes share a store.
	NodeID string
	// Logger receives errors; never identities. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Console serves the web console.
type Console struct {
	opts  Options
	pages map[string]*template.Template
	mux   *http.ServeMux
	log   *slog.Logger
	wake  chan struct{} // an import was created on this node
}

// New builds a Console.
func New(opts Options) (*Console, error) {
	if opts.Store == nil || opts.Operators == nil || opts.Intake == nil || opts.Keys == nil {
		return nil, errors.New("console: Store, Operators, Intake and Keys are required")
	}
	if opts.Throttle == nil {
		opts.Throttle = auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{}, opts.Now)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NodeID == "" {
		opts.NodeID = "console"
	}
	c := &Console{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.routes()
	return c, nil
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", base, err)
		}
		out[base] = t
	}
	return out, nil
}

// ServeHTTP serves everything under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Pages hold request details: never cached, never framed, no
	// referrer leaves the console, and only the console's own assets run.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title    string
	Operator operators.Principal
	CSRF     string
	Error    string
	Data     any
}

// render writes a page with status code.
func (c *Console) render(w http.ResponseWriter, code int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no such page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		c.log.Error("console: render", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an error page: the message of a lethe error (written for
// the caller, never holding an identity), a generic one otherwise.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code, msg := http.StatusInternalServerError, "Something went wrong; the error was logged."
	var le *lethe.Error
	switch {
	case errors.Is(err, store.ErrNotFound):
		code, msg = http.StatusNotFound, "Not found."
	case errors.As(err, &le):
		code, msg = statusOf(le.Code), le.Message
	default:
		c.log.Error("console", "path", r.URL.Path, "error", err.Error())
	}
	p := page{Title: http.StatusText(code), Error: msg}
	if s != nil {
		p.Operator, p.CSRF = s.principal, s.csrf
	}
	c.render(w, code, "error", p)
}

// statusOf is the HTTP status of a lethe error code on a console page.
func statusOf(code string) int {
	switch code {
	case lethe.EINVALID:
		return http.StatusBadRequest
	case lethe.EUNAUTH:
		return http.StatusUnauthorized
	case lethe.EFORBIDDEN:
		return http.StatusForbidden
	case lethe.ENOTFOUND:
		return http.StatusNotFound
	case lethe.ECONFLICT:
		return http.StatusConflict
	case lethe.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case lethe.ERATELIMIT:
		return http.StatusTooManyRequests
	case lethe.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Prefixes implements httpapi.Profile: the console owns /console/.
func (c *Console) Prefixes() []string { return []string{Prefix} }

// Mount implements httpapi.Profile.
func (c *Console) Mount(mux *http.ServeMux) { mux.Handle(Prefix, c) }

// WriteError implements httpapi.Profile: errors outside a page (an
// unmatched method, a panic) are answered as a page too.
func (c *Console) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	c.fail(w, r, nil, err)
}

// MaxBodyBytes implements httpapi.BodyLimiter: an import upload is far
// larger than an API body; every other console form is capped at
// maxFormBytes by its handler.
func (c *Console) MaxBodyBytes() int64 { return maxImportBytes }
