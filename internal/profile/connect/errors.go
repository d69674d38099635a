package connect

import (
	"net/http"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/response"
)

// errorStatus is the profile's mapping from error codes to statuses on the
// compliance endpoints: the native API's, since the profile answers in the
// native shape.
var errorStatus = response.StandardStatus()

// errorWriter answers errors on the compliance endpoints in the native
// API's shape; the token endpoint answers RFC 6749's (token.go).
func (h *Handler) errorWriter() response.Errors {
	return response.Errors{
		Status:  errorStatus,
		Body:    response.NativeBody,
		Surface: "connect",
		Logger:  h.o.Logger,
	}
}

// WriteError answers err in the shape of the endpoint r is for: RFC 6749
// 5.2 under /v2/oauth, the native API's elsewhere. It is the profile's
// error writer for the server too (unmatched paths, panics).
func (h *Handler) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if strings.HasPrefix(r.URL.Path, prefixOAuth+"/") || r.URL.Path == prefixOAuth {
		h.tokenErrors.Write(w, r, err)
		return
	}
	h.errors.Write(w, r, err)
}

// Prefixes are the paths the profile owns (see httpapi.Profile).
func (h *Handler) Prefixes() []string { return []string{prefixOAuth, prefixCompliance} }

const (
	prefixOAuth      = "/v2/oauth"
	prefixCompliance = "/v2/compliance"
)

func writeRaw(w http.ResponseWriter, status int, b []byte) { response.Raw(w, status, b) }

func writeJSON(w http.ResponseWriter, status int, v any) { response.JSON(w, status, v) }

// errMethod is the answer to another method on a POST route.
func errMethod() error {
	return &lethe.Error{Code: response.CodeMethodNotAllowed, Message: "method not allowed; use POST"}
}
