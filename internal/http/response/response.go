// Package response writes what lethe's API surfaces answer: JSON bodies
// that no cache keeps, and errors through one mapping table per surface
// from lethe.Error codes to status and body. Internal details are logged,
// never shown. Like package request it imports no API surface; the native
// API, the partner profiles and the console all use it.
package response

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// CodeMethodNotAllowed is the one error code that has no lethe
// counterpart: the router, not a service, decides it.
const CodeMethodNotAllowed = "method_not_allowed"

// StandardStatus maps every lethe error code to its HTTP status, as the
// native API and the profiles that answer in its shape use it. A surface
// with statuses of its own (a published contract) starts from a copy.
func StandardStatus() map[string]int {
	return map[string]int{
		lethe.EINVALID:       http.StatusBadRequest,
		lethe.EUNAUTH:        http.StatusUnauthorized,
		lethe.EFORBIDDEN:     http.StatusForbidden,
		lethe.ENOTFOUND:      http.StatusNotFound,
		CodeMethodNotAllowed: http.StatusMethodNotAllowed,
		lethe.ECONFLICT:      http.StatusConflict,
		lethe.ETOOLARGE:      http.StatusRequestEntityTooLarge,
		lethe.EUNSUPPORTED:   http.StatusUnsupportedMediaType,
		lethe.ERATELIMIT:     http.StatusTooManyRequests,
		lethe.EUNAVAILABLE:   http.StatusServiceUnavailable,
		lethe.EINTERNAL:      http.StatusInternalServerError,
	}
}

// ErrorBody is the native error shape, which the connect profile answers
// in too: {"error":{"code":"invalid_request","message":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NativeBody renders the native error shape; it is an Errors.Body.
func NativeBody(code, message string) []byte {
	return Marshal(ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

// Errors writes one API surface's error answers.
type Errors struct {
	// Status maps error codes to HTTP statuses; a code not listed is 500.
	Status map[string]int
	// Body renders the surface's error shape for a code and the message
	// shown to the caller.
	Body func(code, message string) []byte
	// Challenge, when set, is the WWW-Authenticate value of a 401.
	Challenge string
	// InternalMessage replaces the message of a 500. Default "internal
	// error".
	InternalMessage string
	// Surface names the API in log lines ("native", "s2s").
	Surface string
	// Logger receives 5xx errors. Never given identities or secrets: the
	// errors of lethe's services carry neither.
	Logger *slog.Logger
}

// StatusOf returns the status e answers for code.
func (e Errors) StatusOf(code string) int {
	if s, ok := e.Status[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Write answers err. Only *lethe.Error messages are shown; anything else
// is logged with the request id and answered with a generic message, as a
// 500.
func (e Errors) Write(w http.ResponseWriter, r *http.Request, err error) {
	code := lethe.ErrorCode(err)
	status := e.StatusOf(code)
	msg := lethe.ErrorMessage(err)
	if status >= http.StatusInternalServerError && e.Logger != nil {
		level, what := slog.LevelError, "request failed"
		switch {
		case status == http.StatusServiceUnavailable:
			level, what = slog.LevelWarn, "dependency unavailable"
		case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
			// The client went away; nobody sees the answer and it is no
			// fault of ours.
			level = slog.LevelWarn
		}
		e.Logger.LogAttrs(r.Context(), level, what,
			slog.String("api", e.Surface),
			slog.String("request_id", request.ID(r.Context())),
			slog.String("route", Route(r)),
			slog.String("err", err.Error()))
	}
	if status == http.StatusInternalServerError {
		code, msg = lethe.EINTERNAL, e.InternalMessage
		if msg == "" {
			msg = "internal error"
		}
	}
	SetErrorHeaders(w.Header(), code, err)
	if code == lethe.EUNAUTH && e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	Raw(w, status, e.Body(code, msg))
}

// Route is the label logs and metrics use: the matched pattern, never the
// path (which may hold anything a client typed).
func Route(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

// RateLimitError is a rate_limited error that knows when the caller may try
// again; SetErrorHeaders turns After into a Retry-After header. What
// refuses a request over its limit returns it (an authenticator that
// consults a ratelimit.Limiter, which itself only says how long to wait);
// the *lethe.Error it wraps carries code and message.
type RateLimitError struct {
	Err   *lethe.Error
	After time.Duration
}

// RateLimited returns a *RateLimitError with code ERATELIMIT.
func RateLimited(after time.Duration, message string) *RateLimitError {
	return &RateLimitError{Err: &lethe.Error{Code: lethe.ERATELIMIT, Message: message}, After: after}
}

func (e *RateLimitError) Error() string { return e.Err.Error() }

// Unwrap lets lethe.ErrorCode and errors.As find the *lethe.Error.
func (e *RateLimitError) Unwrap() error { return e.Err }

// SetErrorHeaders sets the headers an error answer with code carries: the
// Bearer challenge with EUNAUTH, Retry-After with ERATELIMIT (the wait of
// the *RateLimitError in err, or a minute when the limiter did not say).
func SetErrorHeaders(h http.Header, code string, err error) {
	switch code {
	case lethe.EUNAUTH:
		h.Set("WWW-Authenticate", `Bearer realm="lethe"`)
	case lethe.ERATELIMIT:
		after := time.Minute // when the limiter did not say, a conservative guess
		if rl, ok := errors.AsType[*RateLimitError](err); ok {
			after = rl.After
		}
		h.Set("Retry-After", strconv.FormatInt(ratelimit.RetryAfterSeconds(after), 10))
	}
}

// internalBody is answered when one of our own values does not marshal.
var internalBody = []byte(`{"error":{"code":"internal","message":"internal error"}}`)

// Marshal encodes v, one of the surfaces' own answer types, which always
// marshal; should one not, the native internal error stands in.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return internalBody
	}
	return b
}

// JSON answers v as JSON with status.
func JSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, internalBody
	}
	Raw(w, status, b)
}

// Raw answers b, a JSON document, with status. API answers carry request
// data, so no cache may keep them.
func Raw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b) // a write error means the client left
}
