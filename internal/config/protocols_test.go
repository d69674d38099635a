package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/config"
)

func TestProtocols(t *testing.T) {
	t.Parallel()
	const key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" // 32 bytes
	c, err := config.Parse([]byte(`
drp:
  enabled: true
  business_id: CB_ID
  agents:
    - {id: AA_ID, verify_key: "`+key+`"}
  clock_skew: 30s
opendsr:
  enabled: true
  domain: lethe.example.com
rate_limits:
  drp: {limit: 10, window: 1m, block: 1m}
  clients:
    drp.AA_ID:
      drp: {limit: 20, window: 1m, block: 1m}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.DRP.Enabled || c.DRP.BusinessID != "CB_ID" || c.DRP.ClockSkew != 30*time.Second || len(c.DRP.AgentKeys()["AA_ID"]) != 32 {
		t.Fatalf("drp %+v", c.DRP)
	}
	if !c.OpenDSR.Enabled || c.OpenDSR.Domain != "lethe.example.com" {
		t.Fatalf("opendsr %+v", c.OpenDSR)
	}
	if l := c.RateLimits.For(config.ProfileDRP, "drp.AA_ID"); l.Limit != 20 {
		t.Fatalf("agent override %+v", l)
	}
	if l := c.RateLimits.For(config.ProfileOpenDSR, ""); l.Limit != 600 {
		t.Fatalf("opendsr default %+v", l)
	}

	_, err = config.Parse([]byte(`
drp:
  enabled: true
  agents:
    - {id: "bad id", verify_key: "short"}
    - {id: AA, verify_key: "`+key+`"}
    - {id: AA, verify_key: "`+key+`"}
  clock_skew: 1h
opendsr:
  enabled: true
  key_file: /k.pem
`), nil)
	if err == nil {
		t.Fatal("invalid protocol settings loaded")
	}
	for _, want := range []string{"drp.business_id", "drp.agents[0].id", "drp.agents[0].verify_key", "drp.agents[2].id", "drp.clock_skew", "opendsr.domain", "opendsr.certificate_file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}
