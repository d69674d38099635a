package connect

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/http/response"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Routes.
const (
	PathToken  = "/v2/oauth/token"
	PathDelete = "/v2/compliance/customers/delete"
	PathStatus = "/v2/compliance/customers/deletion/status"
)

// Defaults.
const (
	// DefaultMaxBodyBytes bounds a body: 100 identifiers of 256 bytes fit
	// with room for escaping.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMaxStatusIdentifiers bounds one status call.
	DefaultMaxStatusIdentifiers = 100
)

// DefaultRule limits each client to 600 calls a minute (tokens, deletions
// and status together), then blocks it for a minute; enough for batch
// jobs, low enough that a runaway loop is cut short.
var DefaultRule = ratelimit.Rule{Limit: 600, Window: time.Minute, Block: time.Minute}

// RateLimitPrefix prefixes the profile's rate limit keys.
const RateLimitPrefix = "connect:"

// StatusStore is what the status endpoint reads: the newest requests and
// their extensions.
type StatusStore interface {
	store.Requests
	store.Extensions
}

// Options configure a Handler.
type Options struct {
	Intake  *intake.Service   // required
	Clients *clients.Service  // required
	Store   StatusStore       // required: the status endpoint reads it
	Keyring *seal.Keyring     // required: the one intake uses, for subject keys
	Limiter ratelimit.Limiter // required
	// Rules are the rate limits per client; a zero Default means
	// DefaultRule.
	Rules ratelimit.Rules
	// Regulation requests are made under. Default lethe.CCPA.
	Regulation lethe.Regulation
	// MaxBodyBytes bounds a body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxStatusIdentifiers bounds a status call. Default
	// DefaultMaxStatusIdentifiers.
	MaxStatusIdentifiers int
	// Throttle refuses sign-ins after failures, per client_id and per
	// source address. Default: a new auth.Throttle with its default rules.
	Throttle *auth.Throttle
	// Logger; default slog.Default(). Never given identities, secrets or
	// tokens.
	Logger *slog.Logger
}

// Handler serves the profile.
type Handler struct {
	o           Options
	throttle    *auth.Throttle
	errors      response.Errors
	tokenErrors response.Errors
}

// New validates o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Intake == nil || o.Clients == nil || o.Store == nil || o.Keyring == nil || o.Limiter == nil {
		return nil, errors.New("connect: Intake, Clients, Store, Keyring and Limiter are required")
	}
	if o.Rules.Default == (ratelimit.Rule{}) {
		o.Rules.Default = DefaultRule
	}
	if err := o.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if o.Regulation == "" {
		o.Regulation = lethe.CCPA
	}
	if o.MaxBodyBytes < 0 || o.MaxStatusIdentifiers < 0 {
		return nil, errors.New("connect: MaxBodyBytes and MaxStatusIdentifiers must not be negative")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxStatusIdentifiers == 0 {
		o.MaxStatusIdentifiers = DefaultMaxStatusIdentifiers
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{o: o, throttle: o.Throttle}
	if h.throttle == nil {
		h.throttle = auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{}, nil)
	}
	h.errors = h.errorWriter()
	h.tokenErrors = response.Errors{
		Status:    tokenStatus,
		Body:      tokenBody,
		Challenge: `Basic realm="lethe"`,
		Surface:   "connect",
		Logger:    o.Logger,
	}
	return h, nil
}

// RateLimit returns the profile's limits per client.
func (h *Handler) RateLimit() ratelimit.Rules { return h.o.Rules }

// Mount registers the profile's routes on mux. Other methods on the paths
// get a 405 in the profile's shape rather than the mux's plain text.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathToken, h.token)
	mux.HandleFunc("POST "+PathDelete, h.authenticated(h.delete))
	mux.HandleFunc("POST "+PathStatus, h.authenticated(h.status))
	for _, p := range []string{PathToken, PathDelete, PathStatus} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", http.MethodPost)
			h.WriteError(w, r, errMethod())
		})
	}
}

// credentialsInURL refuses credentials in the query string, even correct
// ones: URLs end up in proxy and server logs, so such a secret is already
// exposed and the caller must learn that rather than succeed.
func credentialsInURL(r *http.Request) error {
	q := r.URL.Query()
	for _, k := range []string{"client_id", "client_secret", "access_token"} {
		if q.Has(k) {
			return lethe.Errorf(lethe.EFORBIDDEN, "credentials must be sent in the request body or the Authorization header, never in the URL (rotate a secret that was)")
		}
	}
	return nil
}

func (h *Handler) allow(r *http.Request, clientID string) error {
	return auth.Allow(r.Context(), h.o.Limiter, RateLimitPrefix, auth.Principal{ClientID: clientID}, h.o.Rules)
}

// authenticated checks the bearer token and the client's rate limit, then
// reads the body, before calling next with the client id.
func (h *Handler) authenticated(next func(w http.ResponseWriter, r *http.Request, clientID string, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := credentialsInURL(r); err != nil {
			h.writeError(w, r, err)
			return
		}
		attempt := auth.AttemptOf(r, "connect", "")
		if err := h.throttle.Check(attempt); err != nil {
			h.writeError(w, r, err)
			return
		}
		tok, ok := request.BearerToken(r)
		if !ok {
			h.writeError(w, r, lethe.Errorf(lethe.EUNAUTH, "missing bearer token"))
			return
		}
		t, err := h.o.Clients.AuthenticateToken(r.Context(), tok)
		if err != nil {
			if lethe.ErrorCode(err) == lethe.EUNAUTH {
				err = lethe.Errorf(lethe.EUNAUTH, "invalid or expired bearer token")
				if terr := h.throttle.Fail(attempt); terr != nil {
					err = terr
				}
			}
			h.writeError(w, r, err)
			return
		}
		if err := h.allow(r, t.ClientID); err != nil {
			h.writeError(w, r, err)
			return
		}
		data, err := request.ReadJSON(r, h.o.MaxBodyBytes)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		next(w, r, t.ClientID, data)
	}
}

// The deletion answers, byte for byte as the contract prints them.
var (
	successTrue  = []byte(`{"success": true}`)
	successFalse = []byte(`{"success": false}`)
)

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, clientID string, data []byte) {
	id, err := DecodeDelete(data)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req, outcome, err := h.o.Intake.Submit(r.Context(), intake.Submission{
		Actor:      lethe.ActorClient,
		ClientID:   clientID,
		Identities: []lethe.Identity{id},
		Regulation: h.o.Regulation,
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.o.Logger.LogAttrs(r.Context(), slog.LevelInfo, "connect deletion request",
		slog.String("request_id", req.ID), slog.String("client_id", clientID),
		slog.String("identity_type", string(id.Type)), slog.Bool("duplicate", outcome != intake.Created))
	if outcome == intake.Created {
		writeRaw(w, http.StatusOK, successTrue)
		return
	}
	writeRaw(w, http.StatusOK, successFalse)
}

// Statuses reported by the status endpoint.
const (
	StatusCompleted = "completed"
	StatusPending   = "pending"
	StatusCanceled  = "canceled"
	StatusFailed    = "failed"
	StatusNotFound  = "not_found"
)

type statusResult struct {
	Identifier string `json:"identifier"`
	Status     string `json:"status"`
	// Outcome is the request's lethe.Outcome when it has one, so that
	// a completed erasure is told apart from "nothing was held"
	// (no_match), and a pending request stopped as ambiguous_subject
	// says why it waits.
	Outcome lethe.Outcome `json:"outcome,omitempty"`
	// ExtendedUntil is the due date an operator extended the request to
	// (RFC 3339), when it was extended.
	ExtendedUntil string `json:"extended_until,omitempty"`
}

type statusSummary struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Pending   int `json:"pending"`
	Canceled  int `json:"canceled"`
	Failed    int `json:"failed"`
	NotFound  int `json:"not_found"`
}

type statusResponse struct {
	Results []statusResult `json:"results"`
	Summary statusSummary  `json:"summary"`
}

// reportedStatus maps a request's status to what the profile reports.
func reportedStatus(r *lethe.Request) string {
	switch {
	case r == nil:
		return StatusNotFound
	case r.Status == lethe.StatusCompleted:
		return StatusCompleted
	case r.Status == lethe.StatusCanceled:
		return StatusCanceled
	case r.Status == lethe.StatusFailed:
		// Said as it is: a failed request waits for an operator, and a
		// partner told "pending" would wait for nothing.
		return StatusFailed
	default: // received, running
		return StatusPending
	}
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, clientID string, data []byte) {
	raw, ids, err := DecodeStatus(data, h.o.MaxStatusIdentifiers)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		// The same key the deletion endpoint's submission got: one identity.
		keys[i] = intake.SubjectKey(h.o.Keyring, []lethe.Identity{id})
	}
	latest, err := h.o.Store.LatestRequestsBySubject(r.Context(), clientID, keys)
	if err != nil {
		h.writeError(w, r, fmt.Errorf("latest requests: %w", err))
		return
	}
	resp := statusResponse{Results: make([]statusResult, len(raw))}
	for i := range raw {
		req := latest[keys[i]]
		st := reportedStatus(req)
		resp.Results[i] = statusResult{Identifier: raw[i], Status: st}
		if req != nil {
			resp.Results[i].Outcome = req.Outcome
			ext, err := h.o.Store.GetExtension(r.Context(), req.ID)
			switch {
			case err == nil:
				resp.Results[i].ExtendedUntil = ext.Due.UTC().Format(time.RFC3339)
			case !errors.Is(err, store.ErrNotFound):
				h.writeError(w, r, fmt.Errorf("extension: %w", err))
				return
			}
		}
		switch st {
		case StatusCompleted:
			resp.Summary.Completed++
		case StatusPending:
			resp.Summary.Pending++
		case StatusCanceled:
			resp.Summary.Canceled++
		case StatusFailed:
			resp.Summary.Failed++
		case StatusNotFound:
			resp.Summary.NotFound++
		}
	}
	resp.Summary.Total = len(raw)
	writeJSON(w, http.StatusOK, resp)
}

// writeError answers err on the compliance endpoints.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	h.errors.Write(w, r, err)
}
