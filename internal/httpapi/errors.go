package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// CodeMethodNotAllowed is the one native error code that has no lethe
// counterpart: the router, not a service, decides it.
const CodeMethodNotAllowed = "method_not_allowed"

// errorStatus is the native error shape's only mapping from error codes to
// HTTP status, for the native API and the connect profile alike. Any code
// not listed is treated as EINTERNAL.
var errorStatus = map[string]int{
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

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if s, ok := errorStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the native API's one error shape, which the connect profile
// answers in too: {"error":{"code":"invalid_request","message":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
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
		var rl *RateLimitError
		if errors.As(err, &rl) {
			after = rl.After
		}
		h.Set("Retry-After", strconv.FormatInt(ratelimit.RetryAfterSeconds(after), 10))
	}
}

// writeError answers err in the native error shape. Only *lethe.Error
// messages are shown; anything internal is logged with the request id and
// answered with a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := lethe.ErrorCode(err)
	status := StatusOf(code)
	msg := lethe.ErrorMessage(err)
	switch {
	case status == http.StatusInternalServerError:
		code, msg = lethe.EINTERNAL, "internal error"
		level := slog.LevelError
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody sees the answer and it is no fault of ours.
			level = slog.LevelWarn
		}
		s.log.LogAttrs(r.Context(), level, "request failed",
			slog.String("request_id", RequestID(r.Context())),
			slog.String("route", routeOf(r)),
			slog.String("err", err.Error()))
	case status == http.StatusServiceUnavailable:
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "dependency unavailable",
			slog.String("request_id", RequestID(r.Context())),
			slog.String("route", routeOf(r)),
			slog.String("err", err.Error()))
	}
	SetErrorHeaders(w.Header(), code, err)
	s.writeJSON(w, r, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}
