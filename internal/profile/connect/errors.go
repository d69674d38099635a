package connect

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/httpapi"
)

// writeError answers err in the native API's error shape, with its status
// mapping (httpapi.StatusOf) and headers. Only *lethe.Error messages are
// shown; anything else is logged and answered generically.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := lethe.ErrorCode(err)
	status := httpapi.StatusOf(code)
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
	httpapi.SetErrorHeaders(w.Header(), code, err)
	writeJSON(w, status, httpapi.ErrorBody{Error: httpapi.ErrorDetail{Code: code, Message: msg}})
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
