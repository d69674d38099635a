// Package httpapi is lethe's HTTP server: the native API v1
// (/v1/deletion-requests), health and readiness probes, the OpenAPI
// document, metrics, and the routes other API profiles mount on the same
// mux. It owns the middleware every route shares: request ids, panic
// recovery, a body size cap and an access log that never records bodies,
// query values or credentials.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/http/response"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Limits of the http.Server built by HTTPServer. They bound how long and
// how much one connection can hold the process: lethe's requests and
// answers are small, so a slow or oversized one is an attack or a bug.
const (
	// ReadHeaderTimeout stops slowloris clients that trickle headers.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading the whole request, body included.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds a handler plus writing its answer; every native
	// handler is a few store calls.
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes keep-alive connections nobody uses.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes caps request headers (net/http's default is 1 MiB).
	MaxHeaderBytes = 64 << 10
	// DefaultMaxBodyBytes is the default cap on request bodies.
	DefaultMaxBodyBytes = request.DefaultMaxBodyBytes
	// BodyIdleTimeout is how long a request body may stall before it is
	// answered 400 as shorter than its Content-Length.
	BodyIdleTimeout = request.DefaultBodyIdleTimeout
	// readyTimeout bounds a readiness check so a hung database makes the
	// probe fail instead of hang.
	readyTimeout = 5 * time.Second
)

// Observer receives one call per answered request, for metrics. route is
// the matched mux pattern ("unmatched" when none matched), never the path.
type Observer interface {
	HTTPRequest(route string, status int, d time.Duration)
}

// Options configures a Server.
type Options struct {
	// Intake submits and cancels requests. Required.
	Intake *intake.Service
	// Store reads requests. Required.
	Store store.Store
	// Auth authenticates native API requests; tried in order (see Chain).
	// Empty: every native API request is unauthorized.
	Auth []auth.Authenticator
	// Throttle counts failed sign-ins of the native API per source
	// address. Default: a new auth.Throttle with its default rules.
	Throttle *auth.Throttle
	// Ready reports readiness for /readyz (store and pipeline). Default:
	// Store.Ready.
	Ready func(ctx context.Context) error
	// Metrics, when set, is served at GET /metrics (unauthenticated, like
	// the probes: scrape it on a private interface).
	Metrics http.Handler
	// Logger receives the access log and errors. Default: discard.
	Logger *slog.Logger
	// MaxBodyBytes caps every request body, on every route. Default:
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Profiles are the other API surfaces served on the same mux; they
	// share the middleware but answer in their own shapes.
	Profiles []Profile
	// Observer, when set, is told about every answered request.
	Observer Observer
	// Plan previews a submission for POST /v1/deletion-requests?dry_run=true.
	// Nil: dry runs are refused with 400.
	Plan Planner
	// CompleteTask takes a target's signed confirmation sent to
	// POST /v1/tasks/{token}/complete (see tasks.go). Nil: the route
	// answers 404.
	CompleteTask TaskCompleter
	// Actions are operators' actions on requests (actions.go): approve,
	// deny, hold, release, retry, skip, close, attest. Nil: those routes
	// answer 404.
	Actions Actions
	// Extend serves POST /v1/deletion-requests/{id}/extend (extend.go).
	// Nil: the route answers 404.
	Extend Extender
	// Suppression enables POST /v1/suppressions/check (suppressions.go);
	// while false it answers 409. Removal works either way.
	Suppression bool
	// Now is the clock of the overdue filter. Default time.Now.
	Now func() time.Time
	// Timeouts are the limits of the server HTTPServer builds; zero
	// fields take the defaults of the constants above (timeouts.go).
	Timeouts Timeouts
}

// Server serves the native API and everything mounted on it.
type Server struct {
	intake   *intake.Service
	store    store.Store
	auth     auth.Authenticator
	errors   response.Errors
	profiles []Profile
	ready    func(ctx context.Context) error
	metrics  http.Handler
	log      *slog.Logger
	maxBody  int64
	observer Observer
	plan     Planner
	extend   Extender
	mux      *http.ServeMux
	routes   []route

	// suppression: Options.Suppression (suppressions.go).
	suppression bool

	now      func() time.Time
	timeouts Timeouts
}

// route is one native route; the table is also what the OpenAPI test
// compares the document with.
type route struct {
	pattern string
	handler http.Handler
}

// New returns a Server. It panics when a required option is missing: that
// is a wiring bug, found at start, not a runtime condition.
func New(o Options) *Server {
	if o.Intake == nil || o.Store == nil {
		panic("httpapi: Options.Intake and Options.Store are required")
	}
	s := &Server{
		intake:   o.Intake,
		store:    o.Store,
		profiles: o.Profiles,
		ready:    o.Ready,
		metrics:  o.Metrics,
		log:      o.Logger,
		maxBody:  o.MaxBodyBytes,
		observer: o.Observer,
		plan:     o.Plan,
		extend:   o.Extend,
		mux:      http.NewServeMux(),
	}
	s.suppression = o.Suppression
	s.now, s.timeouts = o.Now, o.Timeouts.withDefaults()
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = o.Store.Ready
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.errors = s.errorWriter()
	throttle := o.Throttle
	if throttle == nil {
		throttle = auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{}, s.now)
	}
	s.auth = auth.Throttled(auth.Chain(o.Auth...), throttle, "native")
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	s.routes = []route{
		{"GET /healthz", http.HandlerFunc(s.handleHealthz)},
		{"GET /readyz", http.HandlerFunc(s.handleReadyz)},
		{"GET /openapi.json", http.HandlerFunc(s.handleOpenAPI)},
		{"POST /v1/deletion-requests", s.authed(operators.RoleReviewer, s.handleCreate)},
		{"GET /v1/deletion-requests", s.authed(operators.RoleViewer, s.handleList)},
		{"GET /v1/deletion-requests/{id}", s.authed(operators.RoleViewer, s.handleGet)},
		{"POST /v1/deletion-requests/{id}/cancel", s.authed(operators.RoleReviewer, s.handleCancel)},
		{"POST /v1/deletion-requests/{id}/extend", s.authed(operators.RoleReviewer, s.handleExtend)},
		{"GET /v1/deletion-requests/{id}/receipt", s.authed(operators.RoleViewer, s.handleReceipt)},
		{"GET /v1/receipts", s.authed(operators.RoleViewer, s.handleReceiptList)},
		{"GET /v1/signing-keys", http.HandlerFunc(s.handleSigningKeys)},
		{"POST /v1/tasks/{token}/complete", s.taskCompleteHandler(o.CompleteTask)},
		{"POST /v1/suppressions/check", s.authed(operators.RoleViewer, s.handleSuppressionCheck)},
		{"DELETE /v1/suppressions", s.authed(operators.RoleAdmin, s.handleSuppressionRemove)},
	}
	s.routes = append(s.routes, s.actionRoutes(o.Actions)...)
	if s.metrics != nil {
		s.routes = append(s.routes, route{"GET /metrics", s.metrics})
	}
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern, rt.handler)
	}
	for _, p := range o.Profiles {
		p.Mount(s.mux)
	}
	return s
}

// Handler returns the server's handler: the mux wrapped in the middleware.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// HTTPServer returns an *http.Server for addr serving Handler with the
// timeouts and header limit above; net/http's own errors go to the logger.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.timeouts.ReadHeader,
		ReadTimeout:       s.timeouts.Read,
		WriteTimeout:      s.timeouts.Write,
		IdleTimeout:       s.timeouts.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// acceptedRequestID is what an X-Request-Id from a proxy must look like to
// be kept: short, and of characters that cannot form an email address or
// break a log line.
var acceptedRequestID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{7,63}$`)

func requestIDFor(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); acceptedRequestID.MatchString(v) {
		return v
	}
	return uuid.NewString()
}

// serveHTTP is the middleware around the mux: request id, body cap, panic
// recovery, unmatched routes in the native error shape, access log and
// observer.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestIDFor(r)
	w.Header().Set("X-Request-Id", id)
	if r.Body != nil {
		// Given the real ResponseWriter so net/http closes the connection
		// instead of draining a body that is too large.
		r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimitFor(r))
	}
	request.WatchBody(w, r, s.timeouts.BodyIdle, s.timeouts.Read)
	r = r.WithContext(request.WithID(r.Context(), id))
	rec := &statusRecorder{ResponseWriter: w}

	aborted := false
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				aborted = true
			} else {
				// The stack, not the request: a body or header could hold
				// identities or credentials.
				s.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.String("request_id", id),
					slog.String("route", response.Route(r)),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())))
				if !rec.wroteHeader {
					s.errorWriterFor(r)(rec, r, lethe.Errorf(lethe.EINTERNAL, "panic"))
				}
			}
		}
		d := time.Since(start)
		status := rec.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing: net/http answers 200
		}
		route := response.Route(r)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Duration("duration", d),
			slog.String("request_id", id))
		if s.observer != nil {
			s.observer.HTTPRequest(route, status, d)
		}
		if aborted {
			panic(http.ErrAbortHandler) // net/http aborts the connection quietly
		}
	}()

	if h, pattern := s.mux.Handler(r); pattern == "" {
		s.unmatched(rec, r, h)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// unmatched answers a request no pattern matched in the error shape of
// the surface its path is under (the native one when none claims it)
// instead of net/http's plain text, keeping its status (404, or 405 with
// Allow) by running the mux's own answer into a scratch recorder.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	writeError := s.errorWriterFor(r)
	scratch := &scratchWriter{header: http.Header{}}
	h.ServeHTTP(scratch, r)
	if scratch.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", scratch.header.Get("Allow"))
		writeError(w, r, &lethe.Error{Code: response.CodeMethodNotAllowed, Message: "method not allowed"})
		return
	}
	writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "no such route"))
}

// profileFor returns the profile whose prefix r's path is under, if any.
func (s *Server) profileFor(r *http.Request) Profile {
	for _, p := range s.profiles {
		for _, prefix := range p.Prefixes() {
			if r.URL.Path == prefix || strings.HasPrefix(r.URL.Path, strings.TrimSuffix(prefix, "/")+"/") {
				return p
			}
		}
	}
	return nil
}

// errorWriterFor returns the error writer of the profile r is for, else
// the native one.
func (s *Server) errorWriterFor(r *http.Request) func(http.ResponseWriter, *http.Request, error) {
	if p := s.profileFor(r); p != nil {
		return p.WriteError
	}
	return s.writeError
}

// bodyLimitFor is the body cap of r: its profile's when the profile sets
// one (BodyLimiter), the server's otherwise.
func (s *Server) bodyLimitFor(r *http.Request) int64 {
	if bl, ok := s.profileFor(r).(BodyLimiter); ok {
		if n := bl.MaxBodyBytes(); n > 0 {
			return n
		}
	}
	return s.maxBody
}

// authed wraps a native handler with authentication and, for operators,
// the least role the route needs: an operator below it is answered 403
// before the handler runs, so nothing changes. Clients pass to the handler,
// which scopes them to their own requests (or refuses them). An operator
// (the admin token included) travels in the request's context too, so
// what it does is audited under its name (operators.Actor).
func (s *Server) authed(role operators.Role, h func(http.ResponseWriter, *http.Request, auth.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Authenticate(r.Context(), r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if p.Admin {
			// An admin principal without an operator is an authenticator's
			// bug; it may do nothing rather than everything.
			if !p.Operator.Can(role) {
				s.writeError(w, r, lethe.Errorf(lethe.EFORBIDDEN, "this needs the %s role", role))
				return
			}
			r = r.WithContext(operators.WithPrincipal(r.Context(), p.Operator))
		}
		h(w, r, p)
	})
}

// operatorOnly answers 403 to a client on a route only operators may use.
func (s *Server) operatorOnly(w http.ResponseWriter, r *http.Request, p auth.Principal) bool {
	if !p.Admin {
		s.writeError(w, r, lethe.Errorf(lethe.EFORBIDDEN, "only operators may do this"))
		return false
	}
	return true
}

// writeJSON answers v as JSON. API answers carry request data, so no cache
// may keep them.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode response: %w", err)) // logged there
		return
	}
	response.Raw(w, status, append(b, '\n'))
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		// The reason is for operators; the probe's body says nothing of
		// the internals.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready",
			slog.String("request_id", request.ID(r.Context())), slog.String("err", err.Error()))
		s.writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusRecorder) WriteHeader(code int) {
	// 1xx answers are informational; the final status comes later.
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush,
// deadlines) through the recorder.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// scratchWriter captures a status and headers and discards the body.
type scratchWriter struct {
	header http.Header
	status int
}

func (w *scratchWriter) Header() http.Header { return w.header }
func (w *scratchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *scratchWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
