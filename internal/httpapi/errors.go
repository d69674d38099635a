package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
)

// codeMethodNotAllowed is the one native error code that has no lethe
// counterpart: the router, not a service, decides it.
const codeMethodNotAllowed = "method_not_allowed"

// errorStatus is the native API's only mapping from error codes to HTTP
// status. Any code not listed is treated as EINTERNAL.
var errorStatus = map[string]int{
	lethe.EINVALID:       http.StatusBadRequest,
	lethe.EUNAUTH:        http.StatusUnauthorized,
	lethe.EFORBIDDEN:     http.StatusForbidden,
	lethe.ENOTFOUND:      http.StatusNotFound,
	codeMethodNotAllowed: http.StatusMethodNotAllowed,
	lethe.ECONFLICT:      http.StatusConflict,
	lethe.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	lethe.EUNSUPPORTED:   http.StatusUnsupportedMediaType,
	lethe.ERATELIMIT:     http.StatusTooManyRequests,
	lethe.EUNAVAILABLE:   http.StatusServiceUnavailable,
	lethe.EINTERNAL:      http.StatusInternalServerError,
}

// statusOf returns the HTTP status for an error code.
func statusOf(code string) int {
	if s, ok := errorStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is the native API's one error shape:
// {"error":{"code":"invalid_request","message":"..."}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// RateLimitError is a rate_limited error that knows when the caller may try
// again; the native API turns After into a Retry-After header. Limiters
// return it (the *lethe.Error it wraps carries code and message).
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

// retryAfterSeconds rounds up so a client that waits exactly that long is
// not refused again, and never says 0 (which would invite a hot loop).
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// writeError answers err in the native error shape. Only *lethe.Error
// messages are shown; anything internal is logged with the request id and
// answered with a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := lethe.ErrorCode(err)
	status := statusOf(code)
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
	switch code {
	case lethe.EUNAUTH:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
	case lethe.ERATELIMIT:
		after := time.Minute // when the limiter did not say, a conservative guess
		var rl *RateLimitError
		if errors.As(err, &rl) {
			after = rl.After
		}
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(after), 10))
	}
	s.writeJSON(w, r, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}
