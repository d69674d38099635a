package httpapi

import (
	"net/http"

	"github.com/lethe-privacy/lethe/internal/http/response"
)

// errorStatus is the native API's one mapping from error codes to HTTP
// status. Any code not listed is treated as EINTERNAL.
var errorStatus = response.StandardStatus()

// StatusOf returns the native API's HTTP status for an error code.
func StatusOf(code string) int {
	return response.Errors{Status: errorStatus}.StatusOf(code)
}

// errorWriter answers errors in the native error shape
// (response.ErrorBody).
func (s *Server) errorWriter() response.Errors {
	return response.Errors{
		Status:  errorStatus,
		Body:    response.NativeBody,
		Surface: "native",
		Logger:  s.log,
	}
}

// writeError answers err in the native error shape. Only *lethe.Error
// messages are shown; anything internal is logged with the request id and
// answered with a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.errors.Write(w, r, err)
}
