package s2s

import (
	"context"
	"encoding/json"
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
)

// Path is the one route of the profile.
const Path = "/user_deletion_requests"

// DefaultMaxBodyBytes bounds a body. A valid body is under 2 KiB even with
// every character of a 256-byte user_id escaped; the margin lets a 10 KB
// user_id reach validation and get a 422 that says what is wrong.
const DefaultMaxBodyBytes = 64 << 10

// DefaultRule is the contract's limit: 50 requests per 10 minutes, then a
// 10-minute block.
var DefaultRule = ratelimit.Rule{Limit: 50, Window: 10 * time.Minute, Block: 10 * time.Minute}

// Messages of the 403s. One text covers every authentication failure after
// the signature is present, so a caller cannot tell a wrong key from a wrong
// signature or a disabled client.
const (
	msgMissingSignature = "Missing signature"
	msgInvalidAuth      = "Invalid API key or signature"
	msgTooMany          = "Too many requests"
	msgInternal         = "Internal error"
	msgMethod           = "Method not allowed"
	msgNotFound         = "Not found"
	msgTruncated        = "Request body is shorter than its Content-Length"
)

// RateLimitPrefix prefixes the profile's rate limit keys.
const RateLimitPrefix = "s2s:"

// errorStatus is the profile's mapping from error codes to the statuses
// its contract publishes (403, 422, 429) and the transport's own.
var errorStatus = map[string]int{
	lethe.EINVALID:                http.StatusUnprocessableEntity,
	lethe.EUNAUTH:                 http.StatusForbidden,
	lethe.EFORBIDDEN:              http.StatusForbidden,
	lethe.ERATELIMIT:              http.StatusTooManyRequests,
	lethe.ETOOLARGE:               http.StatusRequestEntityTooLarge,
	lethe.ENOTFOUND:               http.StatusNotFound,
	response.CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	lethe.EUNSUPPORTED:            http.StatusUnsupportedMediaType,
	lethe.EUNAVAILABLE:            http.StatusServiceUnavailable,
	lethe.EINTERNAL:               http.StatusInternalServerError,
}

// Options configure a Handler.
type Options struct {
	Intake  *intake.Service   // required
	Clients *clients.Service  // required
	Limiter ratelimit.Limiter // required
	// Rules are the rate limits per client; a zero Default means
	// DefaultRule.
	Rules ratelimit.Rules
	// Regulation requests are made under. Default lethe.GDPR.
	Regulation lethe.Regulation
	// MaxBodyBytes bounds a body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Throttle refuses sign-ins after failures, per API key and per
	// source address. Default: a new auth.Throttle with its default rules.
	Throttle *auth.Throttle
	// Logger; default slog.Default(). Never given identities, keys,
	// secrets or signatures.
	Logger *slog.Logger
}

// Handler serves the profile.
type Handler struct {
	o        Options
	throttle *auth.Throttle
	errors   response.Errors
}

// New validates o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Intake == nil || o.Clients == nil || o.Limiter == nil {
		return nil, errors.New("s2s: Intake, Clients and Limiter are required")
	}
	if o.Rules.Default == (ratelimit.Rule{}) {
		o.Rules.Default = DefaultRule
	}
	if err := o.Rules.Validate(); err != nil {
		return nil, fmt.Errorf("s2s: %w", err)
	}
	if o.Regulation == "" {
		o.Regulation = lethe.GDPR
	}
	if o.MaxBodyBytes < 0 {
		return nil, errors.New("s2s: MaxBodyBytes must not be negative")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{o: o, throttle: o.Throttle}
	if h.throttle == nil {
		h.throttle = auth.NewThrottle(auth.FailureRule{}, auth.FailureRule{}, nil)
	}
	h.errors = response.Errors{
		Status:          errorStatus,
		Body:            errorsBody,
		InternalMessage: msgInternal,
		Surface:         "s2s",
		Logger:          o.Logger,
	}
	return h, nil
}

// Prefixes are the paths the profile owns (see httpapi.Profile): its
// route and everything under it, so that a trailing slash or a deeper
// path is answered in the profile's shape.
func (h *Handler) Prefixes() []string { return []string{Path} }

// RateLimit returns the profile's limits per client.
func (h *Handler) RateLimit() ratelimit.Rules { return h.o.Rules }

// WriteError answers err in the profile's shape, { "errors": ["..."] },
// through errorStatus; messages of a 404 or 405 are the profile's own.
func (h *Handler) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	switch lethe.ErrorCode(err) {
	case lethe.ENOTFOUND:
		err = &lethe.Error{Code: lethe.ENOTFOUND, Message: msgNotFound}
	case response.CodeMethodNotAllowed:
		err = &lethe.Error{Code: response.CodeMethodNotAllowed, Message: msgMethod}
	}
	h.errors.Write(w, r, err)
}

// Mount registers the profile's route on mux. Other methods on the path
// get a 405 in the profile's shape rather than the mux's plain text.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST "+Path, h.create)
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeErrors(w, http.StatusMethodNotAllowed, msgMethod)
	})
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	apiKey := r.Header.Get("X-API-KEY")
	attempt := auth.AttemptOf(r, "s2s", apiKey)
	if err := h.throttle.Check(attempt); err != nil {
		h.tooMany(w, err)
		return
	}
	// refuse answers a failed authentication with msg, or 429 once the
	// failures of this key or address reach the throttle's limit.
	refuse := func(msg string) {
		if err := h.throttle.Fail(attempt); err != nil {
			h.tooMany(w, err)
			return
		}
		writeErrors(w, http.StatusForbidden, msg)
	}
	sig := r.Header.Get("Authorization")
	if sig == "" {
		refuse(msgMissingSignature)
		return
	}
	clientID, secrets, err := h.o.Clients.AuthenticateAPIKey(ctx, apiKey)
	if err != nil {
		if errors.Is(err, clients.ErrInvalidCredentials) {
			refuse(msgInvalidAuth)
			return
		}
		h.internal(w, r, "authenticate", err)
		return
	}
	if !VerifySignature(body, sig, secrets) {
		refuse(msgInvalidAuth)
		return
	}
	if err := auth.Allow(ctx, h.o.Limiter, RateLimitPrefix, auth.Principal{ClientID: clientID}, h.o.Rules); err != nil {
		if lethe.ErrorCode(err) == lethe.ERATELIMIT {
			h.tooMany(w, err)
			return
		}
		h.internal(w, r, "rate limit", err)
		return
	}
	userID, err := DecodeBody(body)
	if err != nil {
		writeErrors(w, http.StatusUnprocessableEntity, lethe.ErrorMessage(err))
		return
	}
	req, outcome, err := h.o.Intake.Submit(ctx, intake.Submission{
		Actor:      lethe.ActorClient,
		ClientID:   clientID,
		Identities: []lethe.Identity{userID},
		Regulation: h.o.Regulation,
	})
	if err != nil {
		if lethe.ErrorCode(err) == lethe.EINVALID {
			// DecodeBody already applies intake's rules; this is a guard.
			writeErrors(w, http.StatusUnprocessableEntity, lethe.ErrorMessage(err))
			return
		}
		h.internal(w, r, "submit", err)
		return
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelInfo, "s2s deletion request",
		slog.String("request_id", req.ID), slog.String("client_id", clientID),
		slog.Bool("duplicate", outcome != intake.Created))
	writeID(w, req.ID)
}

// tooMany answers 429 with the Retry-After of err, a
// *response.RateLimitError.
func (h *Handler) tooMany(w http.ResponseWriter, err error) {
	response.SetErrorHeaders(w.Header(), lethe.ERATELIMIT, err)
	w.Header().Del("WWW-Authenticate")
	writeErrors(w, http.StatusTooManyRequests, msgTooMany)
}

// readBody reads the whole body within the limit, answering errors itself.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := h.o.MaxBodyBytes
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, true // judged as a body by DecodeBody: 422
	}
	body, err := request.ReadBody(r, limit)
	switch {
	case err == nil:
		return body, true
	case lethe.ErrorCode(err) == lethe.ETOOLARGE:
		writeErrors(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than %d bytes", limit))
	case errors.Is(err, request.ErrTruncated):
		// Shorter than its Content-Length: no body to judge, and no
		// signature can be checked over it.
		writeErrors(w, http.StatusBadRequest, msgTruncated)
	default:
		// The client went away or sent a broken chunked body; there is no
		// body to judge. 422 keeps to the profile's statuses.
		writeErrors(w, http.StatusUnprocessableEntity, "Request body could not be read")
	}
	return nil, false
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, op string, err error) {
	level := slog.LevelError
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		level = slog.LevelWarn
	}
	h.o.Logger.LogAttrs(r.Context(), level, "s2s request failed", slog.String("op", op), slog.String("err", err.Error()))
	writeErrors(w, http.StatusInternalServerError, msgInternal)
}

// writeID writes the success body in the contract's exact spacing.
func writeID(w http.ResponseWriter, id string) {
	writeRaw(w, http.StatusOK, `{ "id": `+jsonString(id)+` }`)
}

// writeErrors writes the contract's error shape, { "errors": ["..."] },
// with the contract's spacing.
func writeErrors(w http.ResponseWriter, status int, msg string) {
	response.Raw(w, status, errorsBody("", msg))
}

// errorsBody renders the contract's error shape; it is the profile's
// response.Errors Body.
func errorsBody(_, msg string) []byte {
	return []byte(`{ "errors": [` + jsonString(msg) + `] }`)
}

func writeRaw(w http.ResponseWriter, status int, body string) {
	response.Raw(w, status, []byte(body))
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil { // a string always marshals
		return `""`
	}
	return string(b)
}
