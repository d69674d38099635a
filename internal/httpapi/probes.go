package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// NewProbes returns a Server that serves only GET /healthz, GET /readyz and
// (when o.Metrics is set) GET /metrics: what a worker process, which takes
// no API calls, exposes to its orchestrator and scraper. Every other path
// is 404 in the native error shape. It uses o.Ready (required), o.Metrics,
// o.Logger, o.Observer and o.Timeouts; the other options are ignored.
func NewProbes(o Options) *Server {
	if o.Ready == nil {
		panic("httpapi: NewProbes needs Options.Ready")
	}
	s := &Server{
		ready:    o.Ready,
		metrics:  o.Metrics,
		log:      o.Logger,
		maxBody:  DefaultMaxBodyBytes,
		observer: o.Observer,
		mux:      http.NewServeMux(),
		now:      time.Now,
		timeouts: o.Timeouts.withDefaults(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.errors = s.errorWriter()
	s.routes = []route{
		{"GET /healthz", http.HandlerFunc(s.handleHealthz)},
		{"GET /readyz", http.HandlerFunc(s.handleReadyz)},
	}
	if s.metrics != nil {
		s.routes = append(s.routes, route{"GET /metrics", s.metrics})
	}
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern, rt.handler)
	}
	return s
}
