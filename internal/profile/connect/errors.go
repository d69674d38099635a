package connect

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// codeMethodNotAllowed has no lethe counterpart: the route decides it.
const codeMethodNotAllowed = "method_not_allowed"

// errorStatus is this profile's only mapping from error codes to HTTP
// status; a code not listed is internal.
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

// errorBody is the profile's one error shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers err in the profile's error shape. Only *lethe.Error
// messages are shown; anything else is logged and answered generically.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := lethe.ErrorCode(err)
	status, ok := errorStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := lethe.ErrorMessage(err)
	if status >= http.StatusInternalServerError {
		level := slog.LevelError
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			level = slog.LevelWarn // the client went away
		}
		h.o.Logger.LogAttrs(r.Context(), level, "connect request failed",
			slog.String("route", r.Pattern), slog.String("err", err.Error()))
		if status == http.StatusInternalServerError {
			code, msg = lethe.EINTERNAL, "internal error"
		}
	}
	switch code {
	case lethe.EUNAUTH:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
	case lethe.ERATELIMIT:
		after := time.Minute // when the limiter did not say
		var rl *httpapi.RateLimitError
		if errors.As(err, &rl) {
			after = rl.After
		}
		w.Header().Set("Retry-After", strconv.FormatInt(ratelimit.RetryAfterSeconds(after), 10))
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are written; they always marshal
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}
