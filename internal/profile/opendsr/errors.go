package opendsr

import (
	"net/http"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/response"
)

// errorStatus maps lethe error codes to statuses. Section 7.5 answers
// every error of a well-formed call with 400, conflicts included;
// authentication, limits and transport keep their own statuses.
var errorStatus = func() map[string]int {
	m := response.StandardStatus()
	m[lethe.ECONFLICT] = http.StatusBadRequest
	return m
}()

// ErrorBody is section 7.6's error object inside its envelope.
type ErrorBody struct {
	Error ErrorObject `json:"error"`
}

// ErrorObject is section 7.6's error object.
type ErrorObject struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Errors  []ErrorDetail `json:"errors,omitempty"`
}

// ErrorDetail is one entry of errors, members in section 7.7's order.
type ErrorDetail struct {
	Domain  string `json:"domain"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// errorBody renders the error shape; validation errors carry the detail
// entry section 7.7's example shows.
func errorBody(code, msg string) []byte {
	st, ok := errorStatus[code]
	if !ok {
		st = http.StatusInternalServerError
	}
	b := ErrorBody{Error: ErrorObject{Code: st, Message: msg}}
	if code == lethe.EINVALID {
		b.Error.Errors = []ErrorDetail{{Domain: "Validation", Reason: "IllegalArgumentException", Message: strings.TrimSuffix(msg, ".") + "."}}
	}
	return response.Marshal(b)
}

// WriteError answers err in the profile's error shape (httpapi.Profile).
func (h *Handler) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	switch lethe.ErrorCode(err) {
	case lethe.ENOTFOUND:
		if !strings.HasPrefix(lethe.ErrorMessage(err), "no request") {
			err = &lethe.Error{Code: lethe.ENOTFOUND, Message: "not found"}
		}
	case response.CodeMethodNotAllowed:
		err = &lethe.Error{Code: response.CodeMethodNotAllowed, Message: "method not allowed"}
	}
	h.errors.Write(w, r, err)
}
