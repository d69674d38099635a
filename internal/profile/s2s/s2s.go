package s2s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
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
)

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
	// Logger; default slog.Default(). Never given identities, keys,
	// secrets or signatures.
	Logger *slog.Logger
}

// Handler serves the profile.
type Handler struct {
	o Options
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
	return &Handler{o: o}, nil
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
	sig := r.Header.Get("Authorization")
	if sig == "" {
		writeErrors(w, http.StatusForbidden, msgMissingSignature)
		return
	}
	clientID, secrets, err := h.o.Clients.AuthenticateAPIKey(ctx, r.Header.Get("X-API-KEY"))
	if err != nil {
		if errors.Is(err, clients.ErrInvalidCredentials) {
			writeErrors(w, http.StatusForbidden, msgInvalidAuth)
			return
		}
		h.internal(w, r, "authenticate", err)
		return
	}
	if !VerifySignature(body, sig, secrets) {
		writeErrors(w, http.StatusForbidden, msgInvalidAuth)
		return
	}
	allowed, retry, err := h.o.Limiter.Allow(ctx, "s2s:"+clientID, h.o.Rules.For(clientID))
	if err != nil {
		h.internal(w, r, "rate limit", err)
		return
	}
	if !allowed {
		w.Header().Set("Retry-After", strconv.FormatInt(ratelimit.RetryAfterSeconds(retry), 10))
		writeErrors(w, http.StatusTooManyRequests, msgTooMany)
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

// readBody reads the whole body within the limit, answering 413 itself.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := h.o.MaxBodyBytes
	tooLarge := fmt.Sprintf("Request body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		writeErrors(w, http.StatusRequestEntityTooLarge, tooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeErrors(w, http.StatusRequestEntityTooLarge, tooLarge)
			return nil, false
		}
		// The client went away or sent a broken chunked body; there is no
		// body to judge. 422 keeps to the profile's statuses.
		writeErrors(w, http.StatusUnprocessableEntity, "Request body could not be read")
		return nil, false
	}
	return body, true
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
	writeRaw(w, status, `{ "errors": [`+jsonString(msg)+`] }`)
}

func writeRaw(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil { // a string always marshals
		return `""`
	}
	return string(b)
}
