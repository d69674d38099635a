package httpapi

import "time"

// Timeouts are the per-connection limits of the server HTTPServer builds.
// Each zero field takes the constant of the same name (ReadHeaderTimeout,
// ReadTimeout, WriteTimeout, IdleTimeout). They are configurable so that a
// deployment behind a slow network can loosen them and tests can check, in
// seconds, that slow clients are cut.
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
	// BodyIdle is how long a request body may stall (BodyIdleTimeout).
	BodyIdle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = ReadHeaderTimeout
	}
	if t.Read <= 0 {
		t.Read = ReadTimeout
	}
	if t.Write <= 0 {
		t.Write = WriteTimeout
	}
	if t.Idle <= 0 {
		t.Idle = IdleTimeout
	}
	if t.BodyIdle <= 0 {
		t.BodyIdle = BodyIdleTimeout
	}
	return t
}
