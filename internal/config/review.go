package config

import (
	"slices"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Review is the review policy: which requests wait for an operator, or
// for a waiting period, before erasure starts. Default: none wait.
type Review struct {
	// ApproveRegulations holds every request under these regulations for
	// an operator's approval. Default none.
	ApproveRegulations []lethe.Regulation `yaml:"approve_regulations"`
	// ApproveClients holds every request of these clients (by name;
	// "admin" for the admin token's) for approval. Default none.
	ApproveClients []string `yaml:"approve_clients"`
	// WaitingPeriod starts erasure only this long after a request was
	// received, unless it is canceled first; 0..8760h. Default 0 (none).
	WaitingPeriod time.Duration `yaml:"waiting_period"`
	// SweepInterval is how often ended waiting periods are released,
	// 1s..24h. Default 1m.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// defaultHoldSweepInterval is pipeline.DefaultHoldSweepInterval.
const defaultHoldSweepInterval = time.Minute

func (c *Config) validateReview(bad badFunc) {
	durRange(bad, "review.waiting_period", c.Review.WaitingPeriod, 0, 365*24*time.Hour)
	durRange(bad, "review.sweep_interval", c.Review.SweepInterval, time.Second, 24*time.Hour)
	for i, r := range c.Review.ApproveRegulations {
		if !slices.Contains([]lethe.Regulation{lethe.GDPR, lethe.CCPA}, r) {
			bad(joinIndex("review.approve_regulations", i), "must be gdpr or ccpa")
		}
	}
	for i, n := range c.Review.ApproveClients {
		if n == "" {
			bad(joinIndex("review.approve_clients", i), "must name a client")
		}
	}
}
