package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/clients"
)

// DRP configures the Data Rights Protocol 1.0 provider profile
// (docs/drp.md).
type DRP struct {
	// Enabled serves the profile. Default false.
	Enabled bool `yaml:"enabled"`
	// BusinessID is this covered business's id in the DRP directory;
	// requests naming another are refused. Required when enabled.
	BusinessID string `yaml:"business_id"`
	// Agents is the authorized-agent directory lethe trusts: each
	// agent's id and base64 Ed25519 verify key. Default none.
	Agents []DRPAgent `yaml:"agents"`
	// ClockSkew is how far in the future an issued-at may be, 0s..10m.
	// Default 1m.
	ClockSkew time.Duration `yaml:"clock_skew"`
}

// DRPAgent is one entry of the agent directory.
type DRPAgent struct {
	ID        string `yaml:"id"`
	VerifyKey string `yaml:"verify_key"`
}

// OpenDSR configures the OpenDSR 2.0 processor profile
// (docs/opendsr.md).
type OpenDSR struct {
	// Enabled serves the profile. Default false.
	Enabled bool `yaml:"enabled"`
	// Domain is the processor's domain (X-OpenDSR-Processor-Domain, and
	// the host of the published certificate). Required when enabled.
	Domain string `yaml:"domain"`
	// CertificateFile and KeyFile (PEM) sign answers and callbacks with
	// a CA-issued certificate; left out, lethe generates a key and a
	// self-signed certificate. Default "".
	CertificateFile string `yaml:"certificate_file"`
	KeyFile         string `yaml:"key_file"`
}

// AgentKeys returns the directory as id to verify key; Validate has
// checked every entry.
func (d DRP) AgentKeys() map[string]ed25519.PublicKey {
	out := make(map[string]ed25519.PublicKey, len(d.Agents))
	for _, a := range d.Agents {
		if k, ok := parseVerifyKey(a.VerifyKey); ok {
			out[a.ID] = k
		}
	}
	return out
}

// parseVerifyKey reads a base64 Ed25519 public key (section 3.05.1 of
// DRP: PyNaCl's Base64Encoder).
func parseVerifyKey(s string) (ed25519.PublicKey, bool) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, false
	}
	return ed25519.PublicKey(b), true
}

func (c *Config) validateProtocols(bad badFunc) {
	d := c.DRP
	durRange(bad, "drp.clock_skew", d.ClockSkew, 0, 10*time.Minute)
	if d.Enabled && strings.TrimSpace(d.BusinessID) == "" {
		bad("drp.business_id", "is required when drp is enabled")
	}
	seen := map[string]bool{}
	for i, a := range d.Agents {
		p := joinIndex("drp.agents", i)
		if clients.ValidateAgentID(a.ID) != nil {
			bad(p+".id", "must be 1 to 60 letters, digits, '.', '_' or '-'")
		} else if seen[a.ID] {
			bad(p+".id", "is listed twice")
		}
		seen[a.ID] = true
		if _, ok := parseVerifyKey(a.VerifyKey); !ok {
			bad(p+".verify_key", "must be the base64 of a 32-byte Ed25519 public key")
		}
	}
	o := c.OpenDSR
	if o.Enabled && strings.TrimSpace(o.Domain) == "" {
		bad("opendsr.domain", "is required when opendsr is enabled")
	}
	if o.Domain != "" && (strings.ContainsAny(o.Domain, "/:@ ") || strings.HasPrefix(o.Domain, ".")) {
		bad("opendsr.domain", "must be a host name")
	}
	if (o.CertificateFile == "") != (o.KeyFile == "") {
		bad("opendsr.certificate_file", "and opendsr.key_file go together")
	}
}

// Defaults of the protocol profiles. They are the profiles' own
// (drp.DefaultRule, drp.DefaultClockSkew, opendsr.DefaultRule), written
// out because those packages build on the pipeline, which imports this
// one; cmd/lethe's TestProtocolDefaults keeps them equal.
var (
	defaultDRPLimit     = Limit{Limit: 600, Window: time.Minute, Block: time.Minute}
	defaultOpenDSRLimit = Limit{Limit: 600, Window: time.Minute, Block: time.Minute}
	defaultDRPClockSkew = time.Minute
)
