package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes the native API. It is written by hand so that
// it states the contract rather than whatever the code happens to do; a
// test keeps its routes and the mux's in step.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the native API's OpenAPI 3.1 document.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument) // a write error means the client left
}
