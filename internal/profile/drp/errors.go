package drp

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/response"
)

// errorStatus maps lethe error codes to the statuses the profile answers.
// Authentication failures are 403, as DRP answers a bad token, a bad
// signature or another agent's request.
var errorStatus = func() map[string]int {
	m := response.StandardStatus()
	m[lethe.EUNAUTH] = http.StatusForbidden
	return m
}()

// ErrorBody is DRP's error shape (section 3.06): code is the HTTP status
// as a string; fatal, when true, says the request will not be processed
// and a retry will not change that.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal,omitempty"`
}

func errorBody(code, msg string) []byte {
	st, ok := errorStatus[code]
	if !ok {
		st = http.StatusInternalServerError
	}
	return response.Marshal(ErrorBody{Code: strconv.Itoa(st), Message: msg})
}

// fatalError is an error the agent must not retry (fatal: true).
type fatalError struct{ err *lethe.Error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func fatal(code, format string, args ...any) error {
	return fatalError{lethe.Errorf(code, format, args...)}
}

// Messages the spec words itself.
const (
	// msgUnsupportedRight is section 3.06's example answer to a right the
	// business does not offer.
	msgUnsupportedRight = "Unsupported rights actions submitted."
	msgNotFound         = "Not found"
	msgMethod           = "Method not allowed"
	msgTooMany          = "Too many requests"
	msgInternal         = "Internal error"
)

// WriteError answers err in DRP's error shape (httpapi.Profile).
func (h *Handler) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	switch lethe.ErrorCode(err) {
	case lethe.ENOTFOUND:
		if errors.As(err, new(fatalError)) {
			break
		}
		err = &lethe.Error{Code: lethe.ENOTFOUND, Message: msgNotFound}
	case response.CodeMethodNotAllowed:
		err = &lethe.Error{Code: response.CodeMethodNotAllowed, Message: msgMethod}
	}
	var fe fatalError
	if errors.As(err, &fe) {
		st := h.errors.StatusOf(fe.err.Code)
		response.Raw(w, st, response.Marshal(ErrorBody{Code: strconv.Itoa(st), Message: fe.err.Message, Fatal: true}))
		return
	}
	h.errors.Write(w, r, err)
}
