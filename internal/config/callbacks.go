package config

import (
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/netguard"
)

// Callbacks tunes the status callbacks sent to a request's callback_url
// (docs/callbacks.md).
type Callbacks struct {
	// Secret signs the callbacks of requests the admin submitted (a
	// client's requests are signed with its HMAC shared secret). Write it
	// as ${VAR}; at least 16 characters. Default "": derived from the
	// master key (print it with `lethe callbacks secret`).
	Secret string `yaml:"secret"`
	// Window is how long delivery of an event is retried, 1m..168h.
	// Default 24h.
	Window time.Duration `yaml:"window"`
	// Timeout bounds one delivery attempt, 1s..60s. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// AllowHosts, when not empty, are the only hosts callbacks may go to
	// ("*.example.com" for subdomains). Default none (any host).
	AllowHosts []string `yaml:"allow_hosts"`
	// ForbidPrivateAddresses refuses loopback, private, link-local and
	// other non-public destination addresses (netguard.Public), checked
	// on every address dialed. Default true; false turns the check off.
	ForbidPrivateAddresses bool `yaml:"forbid_private_addresses"`
	// AllowPrivateHosts are the hosts callbacks may reach although their
	// addresses are not public: exact names, "*." and a domain, IP
	// addresses or CIDR networks (e.g. 127.0.0.1 for a local receiver).
	// Plain http:// is allowed to them too. Default none.
	AllowPrivateHosts []string `yaml:"allow_private_hosts"`
}

// Suppression configures the suppression list (docs/suppression.md).
type Suppression struct {
	// Enabled adds the keyed hashes of a completed request's identities to
	// the list. Default false.
	Enabled bool `yaml:"enabled"`
}

// minCallbackSecret keeps a guessable signing secret out of production.
const minCallbackSecret = 16

func (c *Config) validateCallbacks(bad badFunc) {
	cb := c.Callbacks
	if cb.Secret != "" && len(cb.Secret) < minCallbackSecret {
		bad("callbacks.secret", "must be at least %d characters (or left out to derive one from the master key)", minCallbackSecret)
	}
	durRange(bad, "callbacks.window", cb.Window, time.Minute, 7*24*time.Hour)
	durRange(bad, "callbacks.timeout", cb.Timeout, time.Second, time.Minute)
	for i, h := range cb.AllowHosts {
		if strings.TrimPrefix(h, "*.") == "" || strings.ContainsAny(h, "/:@ ") {
			bad(joinIndex("callbacks.allow_hosts", i), "must be a host name, or *. and a domain")
		}
	}
	for i, h := range cb.AllowPrivateHosts {
		if _, err := netguard.New([]string{h}); err != nil {
			bad(joinIndex("callbacks.allow_private_hosts", i), `must be a host name, "*." and a domain, an IP address or a CIDR network`)
		}
	}
}
