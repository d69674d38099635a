// Package netguard keeps lethe's outbound calls (status callbacks, webhook
// and processor targets) off private networks: a Guard dials only public
// addresses, checking every address a name resolves to at connect time
// and every hop of a redirect, unless the operator allowed the host.
//
// The check is made on the address actually dialed, never on the URL
// alone, so a DNS answer that changes between a check and the connection
// (rebinding) cannot get around it; and the transports it builds use no
// proxy from the environment, which would dial in its place.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrRefused marks a connection the Guard refused because the destination
// address is not public and its host is not allowed.
var ErrRefused = errors.New("netguard: destination address refused")

// Resolver looks up the addresses of a host name (net.DefaultResolver in
// production; a table in tests).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard decides which destinations outbound calls may reach. The zero
// value is not usable; New builds one.
type Guard struct {
	// Resolver resolves host names. Default net.DefaultResolver.
	Resolver Resolver
	// Dialer connects to the checked addresses; its Control, if any, runs
	// after the Guard's own check (its ControlContext is not used). Default:
	// 10s connect timeout, 30s keep-alive.
	Dialer *net.Dialer

	names    map[string]bool // exact host names, lower-case
	suffixes []string        // ".example.com" for "*.example.com"
	nets     []netip.Prefix  // allowed addresses and networks
}

// New returns a Guard that refuses every non-public address (see Public)
// except for the hosts in allow. Each entry is an exact host name
// ("hooks.internal"), "*." and a domain for its subdomains
// ("*.corp.example", not corp.example itself), an IP address ("127.0.0.1",
// "::1") or a network in CIDR form ("10.20.0.0/16"). A host name entry
// lets that name reach whatever it resolves to; an address or network
// entry lets any name reach the addresses in it.
func New(allow []string) (*Guard, error) {
	g := &Guard{names: map[string]bool{}}
	var errs []error
	for i, a := range allow {
		if err := g.add(a); err != nil {
			errs = append(errs, fmt.Errorf("allow_hosts[%d]: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

// Strict is New(nil): public addresses only.
func Strict() *Guard {
	g, _ := New(nil)
	return g
}

func (g *Guard) add(a string) error {
	a = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(a), "."))
	if p, err := netip.ParsePrefix(a); err == nil {
		g.nets = append(g.nets, p.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(a, "[]")); err == nil {
		g.nets = append(g.nets, netip.PrefixFrom(ip.WithZone(""), ip.BitLen()))
		return nil
	}
	name, wildcard := strings.CutPrefix(a, "*.")
	if !validName(name) {
		return errors.New(`must be a host name, "*." and a domain, an IP address or a CIDR network`)
	}
	if wildcard {
		g.suffixes = append(g.suffixes, "."+name)
	} else {
		g.names[name] = true
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// HostAllowed reports whether the operator allowed host (a name or an
// address literal, as in a URL) to be reached whatever its addresses.
func (g *Guard) HostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.netAllowed(ip)
	}
	if g.names[host] {
		return true
	}
	for _, s := range g.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func (g *Guard) netAllowed(ip netip.Addr) bool {
	ip = ip.WithZone("")
	for _, p := range g.nets {
		if p.Contains(ip) || (ip.Is4In6() && p.Contains(ip.Unmap())) {
			return true
		}
	}
	return false
}

// AddrAllowed reports whether a connection to ip, reached through host,
// may be made.
func (g *Guard) AddrAllowed(host string, ip netip.Addr) bool {
	return Public(ip) || g.netAllowed(ip) || g.HostAllowed(host)
}

// PlainHTTPAllowed reports whether http:// (no TLS) may be used to host:
// only to a loopback name or address, or to a host the operator allowed.
// Identities and credentials travel in lethe's calls.
func (g *Guard) PlainHTTPAllowed(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if h == "localhost" {
		return true
	}
	if ip, err := netip.ParseAddr(h); err == nil && ip.Unmap().IsLoopback() {
		return true
	}
	return g.HostAllowed(host)
}

// DialContext connects to address ("host:port") at the first of the
// host's addresses that is allowed and answers, in the resolver's order.
// Addresses that are not allowed are never dialed; when none is allowed
// the error wraps ErrRefused.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		r := g.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		ips, err = r.LookupNetIP(ctx, lookupNetwork(network), host)
		if err != nil {
			return nil, err
		}
	}
	allowed := ips[:0:0]
	for _, ip := range ips {
		if g.AddrAllowed(host, ip) {
			allowed = append(allowed, ip)
		}
	}
	if len(allowed) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: ErrRefused}
	}
	d := g.dialer(host)
	var firstErr error
	for _, ip := range allowed {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// dialer is the configured Dialer with the Guard's check in Control, so
// even an address the dialer chose by itself is checked.
func (g *Guard) dialer(host string) *net.Dialer {
	var d net.Dialer
	if g.Dialer != nil {
		d = *g.Dialer
	} else {
		d = net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	next := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		h, _, err := net.SplitHostPort(address)
		if err != nil {
			return ErrRefused
		}
		ip, err := netip.ParseAddr(h)
		if err != nil || !g.AddrAllowed(host, ip) {
			return ErrRefused
		}
		if next != nil {
			return next(network, address, c)
		}
		return nil
	}
	d.ControlContext = nil
	return &d
}

func lookupNetwork(network string) string {
	switch network {
	case "tcp4", "udp4":
		return "ip4"
	case "tcp6", "udp6":
		return "ip6"
	}
	return "ip"
}

// Transport returns an HTTP transport that dials through the Guard and
// uses no proxy (a proxy would dial in the Guard's place). Callers tune
// its timeouts.
func (g *Guard) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
