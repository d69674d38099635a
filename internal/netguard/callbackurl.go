package netguard

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/lethe-privacy/lethe"
)

// CallbackURLs is what a submitted callback_url may name: the same rules
// the delivery will apply, checked at submission so that a request whose
// callbacks could never be delivered is refused with a 4xx instead of
// failing later where only the partner's request view shows it.
type CallbackURLs struct {
	// Guard decides which addresses may be reached. Nil: public
	// addresses only (Strict).
	Guard *Guard
	// Hosts, when not empty, are the only hosts callbacks may go to
	// (callbacks.allow_hosts: exact names or "*." and a domain).
	Hosts []string
}

// Check returns a lethe EINVALID error when raw is not an absolute https
// URL (http only to a host PlainHTTPAllowed), carries credentials, names
// a host outside Hosts, or names an address literal the Guard refuses.
// Names are not resolved here: what they resolve to is checked again at
// every delivery. The message never quotes the URL.
func (c CallbackURLs) Check(raw string) error {
	g := c.Guard
	if g == nil {
		g = Strict()
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return lethe.Errorf(lethe.EINVALID, "callback_url must be an absolute https URL")
	}
	if u.User != nil {
		return lethe.Errorf(lethe.EINVALID, "callback_url must not carry credentials")
	}
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if !g.PlainHTTPAllowed(host) {
			return lethe.Errorf(lethe.EINVALID, "callback_url must use https")
		}
	default:
		return lethe.Errorf(lethe.EINVALID, "callback_url must be an absolute https URL")
	}
	if len(c.Hosts) > 0 && !matchHost(c.Hosts, host) {
		return lethe.Errorf(lethe.EINVALID, "callback_url names a host callbacks may not go to")
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !g.AddrAllowed(host, ip) {
		return lethe.Errorf(lethe.EINVALID, "callback_url names an address callbacks may not go to")
	}
	return nil
}

// matchHost is callbacks.allow_hosts matching: exact names,
// case-insensitive, or "*." and a domain for its subdomains.
func matchHost(patterns []string, host string) bool {
	g := &Guard{names: map[string]bool{}}
	for _, p := range patterns {
		_ = g.add(p) // validated with the config
	}
	return g.HostAllowed(host)
}
