package main

import (
	"testing"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/profile/drp"
	"github.com/lethe-privacy/lethe/internal/profile/opendsr"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// TestProtocolDefaults: the configuration's defaults for the protocol
// profiles are the profiles' own.
func TestProtocolDefaults(t *testing.T) {
	d := config.Default()
	rule := func(l config.Limit) ratelimit.Rule {
		return ratelimit.Rule{Limit: l.Limit, Window: l.Window, Block: l.Block}
	}
	if rule(d.RateLimits.DRP) != drp.DefaultRule || rule(d.RateLimits.OpenDSR) != opendsr.DefaultRule {
		t.Fatalf("rate limits %+v %+v", d.RateLimits.DRP, d.RateLimits.OpenDSR)
	}
	if d.DRP.ClockSkew != drp.DefaultClockSkew {
		t.Fatalf("clock skew %s", d.DRP.ClockSkew)
	}
}
