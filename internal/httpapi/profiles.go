package httpapi

import "net/http"

// Profile is an API surface served beside the native API on the same
// server, sharing its middleware (request ids, body cap, stalled-body
// cut-off, panic recovery, access log): the partner profiles today, the
// DRP and OpenDSR profiles and the console later. A profile imports the
// shared toolkit (internal/http/request, response, auth), never this
// package or another profile; it meets this interface by its methods
// alone.
type Profile interface {
	// Prefixes are the paths the profile owns: the paths themselves and
	// everything under them. A request there that no route matches, or
	// whose handler panics, is answered by the profile's WriteError, so a
	// client of the profile only ever sees the profile's shape.
	Prefixes() []string
	// Mount registers the profile's routes on mux.
	Mount(mux *http.ServeMux)
	// WriteError answers err in the profile's error shape through its
	// own mapping from lethe.Error codes to statuses.
	WriteError(w http.ResponseWriter, r *http.Request, err error)
}

// BodyLimiter is implemented by a profile whose requests may be larger
// than the server's body cap (the console's CSV upload); the profile then
// bounds them itself.
type BodyLimiter interface {
	MaxBodyBytes() int64
}
