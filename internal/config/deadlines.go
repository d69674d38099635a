package config

import "time"

// Deadlines tunes the deadline sweep, which records when an open request
// comes close to its due date and when it passes it; the counts show in
// the metrics lethe_requests_due_soon and lethe_requests_overdue.
type Deadlines struct {
	// WarnBefore is how long before its due date an open request counts
	// as due soon, 1h..8760h. Default 168h (7 days).
	WarnBefore time.Duration `yaml:"warn_before"`
	// SweepInterval is how often the sweep runs (on one process of those
	// sharing the database), 1s..24h. Default 10m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

func (c *Config) validateDeadlines(bad badFunc) {
	durRange(bad, "deadlines.warn_before", c.Deadlines.WarnBefore, time.Hour, 365*24*time.Hour)
	durRange(bad, "deadlines.sweep_interval", c.Deadlines.SweepInterval, time.Second, 24*time.Hour)
}
