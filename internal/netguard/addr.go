package netguard

import (
	"encoding/binary"
	"net/netip"
)

// refused4 are the IPv4 ranges that are not the public internet: this
// host, private networks, shared (carrier-grade NAT) space, link-local
// (where cloud metadata services answer, 169.254.169.254), IETF protocol
// assignments, documentation, benchmarking, multicast, reserved and the
// broadcast address.
var refused4 = prefixes(
	"0.0.0.0/8",          // "this network", unspecified
	"10.0.0.0/8",         // RFC 1918
	"100.64.0.0/10",      // shared address space (CGNAT), RFC 6598
	"127.0.0.0/8",        // loopback
	"169.254.0.0/16",     // link-local, cloud metadata
	"172.16.0.0/12",      // RFC 1918
	"192.0.0.0/24",       // IETF protocol assignments, RFC 6890
	"192.0.2.0/24",       // TEST-NET-1
	"192.88.99.0/24",     // 6to4 relay anycast (deprecated)
	"192.168.0.0/16",     // RFC 1918
	"198.18.0.0/15",      // benchmarking, RFC 2544
	"198.51.100.0/24",    // TEST-NET-2
	"203.0.113.0/24",     // TEST-NET-3
	"224.0.0.0/4",        // multicast
	"240.0.0.0/4",        // reserved, RFC 1112
	"255.255.255.255/32", // broadcast (inside 240/4; named for the reader)
)

// refused6 are the IPv6 ranges inside global unicast (2000::/3) that are not
// the public internet. Everything outside 2000::/3 (loopback, unspecified,
// IPv4-mapped and -compatible, link-local, site-local fec0::/10,
// unique-local fc00::/7, multicast, discard-only 100::/64, NAT64 64:ff9b::)
// is refused or unwrapped before this list is consulted.
var refused6 = prefixes(
	"2001:2::/48",   // benchmarking, RFC 5180
	"2001:10::/28",  // ORCHID (deprecated)
	"2001:20::/28",  // ORCHIDv2
	"2001:db8::/32", // documentation
	"3fff::/20",     // documentation, RFC 9637
)

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052: embeds an IPv4 address
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215: local-use translation
	compat4    = netip.MustParsePrefix("::/96")          // IPv4-compatible (deprecated)
	sixToFour  = netip.MustParsePrefix("2002::/16")      // 6to4: embeds an IPv4 address
	teredo     = netip.MustParsePrefix("2001::/32")      // Teredo: embeds two IPv4 addresses
	global6    = netip.MustParsePrefix("2000::/3")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Public reports whether ip is an address of the public internet: not
// loopback, private, link-local, shared, reserved, documentation,
// multicast, broadcast or unspecified, and, for IPv6 forms that carry an
// IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64
// 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32), only when every
// embedded IPv4 address is public too. NAT64's local-use prefix
// 64:ff9b:1::/48 is refused outright: what it translates to is site policy.
func Public(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return public4(ip.Unmap())
	}
	if ip.Is4() {
		return public4(ip)
	}
	b := ip.As16()
	switch {
	case nat64Local.Contains(ip):
		return false
	case nat64.Contains(ip), compat4.Contains(ip):
		return public4(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return public4(netip.AddrFrom4([4]byte(b[2:6])))
	case teredo.Contains(ip):
		// The server address is plain, the client address (the peer a
		// packet finally reaches) is stored inverted.
		var client [4]byte
		binary.BigEndian.PutUint32(client[:], ^binary.BigEndian.Uint32(b[12:16]))
		return public4(netip.AddrFrom4([4]byte(b[4:8]))) && public4(netip.AddrFrom4(client))
	case !global6.Contains(ip):
		return false
	}
	for _, p := range refused6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

func public4(ip netip.Addr) bool {
	for _, p := range refused4 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
