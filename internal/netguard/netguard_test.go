package netguard_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/netguard"
)

// refused holds at least one address of every range a Guard refuses.
var refused = []string{
	"0.0.0.0", "0.1.2.3", // unspecified, "this network"
	"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1", // RFC 1918
	"100.64.0.1", "100.127.255.254", // CGNAT
	"127.0.0.1", "127.8.9.10", // loopback
	"169.254.169.254", "169.254.0.1", // link-local, metadata
	"192.0.0.1", "192.0.0.170", // IETF protocol assignments
	"192.0.2.1", "198.51.100.7", "203.0.113.9", // documentation
	"198.18.0.1", "198.19.255.254", // benchmarking
	"224.0.0.1", "239.255.255.250", // multicast
	"240.0.0.1", "254.1.2.3", "255.255.255.255", // reserved, broadcast
	"::", "::1", // unspecified, loopback
	"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
	"::127.0.0.1", "::10.0.0.1", "::a9fe:a9fe", // IPv4-compatible
	"64:ff9b::7f00:1", "64:ff9b::10.1.2.3", "64:ff9b::169.254.169.254", // NAT64 to private
	"64:ff9b:1::1", "64:ff9b:1::8.8.8.8", // NAT64 local use
	"2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", // 6to4 embedding private
	"2001:0:a00:1::1",                    // Teredo with a private server
	"2001:0:808:808::80ff:fffe",          // Teredo with client 127.0.0.1 (stored inverted)
	"fe80::1", "fe80::1%eth0", "febf::1", // link-local
	"fec0::1", "feff::1", // site-local
	"fc00::1", "fd12:3456::1", // unique-local
	"ff02::1", "ff05::1:3", // multicast
	"2001:db8::1", "3fff::1", // documentation
	"2001:2::1", "2001:10::1", "2001:20::1", // benchmarking, ORCHID
	"100::1", "::2", "4000::1", // discard-only, outside global unicast
}

var public = []string{
	"8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.32.0.1", "192.0.1.1", "198.20.0.1",
	"2001:4860:4860::8888", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	"2001:0:808:808::f7f7:f7f7", // Teredo, server and client 8.8.8.8
}

func TestPublic(t *testing.T) {
	t.Parallel()
	for _, s := range refused {
		if netguard.Public(netip.MustParseAddr(s)) {
			t.Errorf("Public(%s) = true, want false", s)
		}
	}
	for _, s := range public {
		if !netguard.Public(netip.MustParseAddr(s)) {
			t.Errorf("Public(%s) = false, want true", s)
		}
	}
}

// table is a Resolver answering from a map; unknown names are not found.
type table map[string][]string

func (tb table) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ss, ok := tb[strings.ToLower(host)]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// loopbackOnly is a Dialer whose Control fails the test when anything but
// a loopback address is about to be dialed, and counts the dials.
func loopbackOnly(t *testing.T, dials *atomic.Int64) *net.Dialer {
	return &net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		dials.Add(1)
		host, _, _ := net.SplitHostPort(address)
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Unmap().IsLoopback() {
			t.Errorf("dial to non-loopback address %s attempted", address)
			return errors.New("test: non-loopback dial")
		}
		return nil
	}}
}

func guard(t *testing.T, allow []string, names table, dials *atomic.Int64) *netguard.Guard {
	t.Helper()
	g, err := netguard.New(allow)
	if err != nil {
		t.Fatalf("New(%q): %v", allow, err)
	}
	g.Resolver = names
	g.Dialer = loopbackOnly(t, dials)
	return g
}

func TestDialRefusesNonPublic(t *testing.T) {
	t.Parallel()
	names := table{}
	for i, s := range refused {
		names["n"+strings.Repeat("x", i)+".test"] = []string{strings.Split(s, "%")[0]}
	}
	names["mixed.test"] = []string{"10.0.0.1", "169.254.169.254", "::1"}
	var dials atomic.Int64
	g := guard(t, nil, names, &dials)
	ctx := context.Background()
	try := func(addr string) {
		t.Helper()
		c, err := g.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			t.Errorf("DialContext(%s) connected, want refused", addr)
			return
		}
		if !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("DialContext(%s) = %v, want ErrRefused", addr, err)
		}
	}
	for _, s := range refused {
		try(net.JoinHostPort(s, "443"))
	}
	for name := range names {
		try(net.JoinHostPort(name, "443"))
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d dials attempted, want none", n)
	}
}

func TestHTTPClient(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, to, http.StatusTemporaryRedirect)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	names := table{
		"hooks.internal":   {"127.0.0.1"},
		"a.corp.internal":  {"127.0.0.1"},
		"evil.example":     {"127.0.0.1"},
		"metadata.example": {"169.254.169.254"},
		"lan.example":      {"192.168.1.20", "10.1.1.1"},
		"v6.example":       {"fd00::1"},
		"mixed.example":    {"10.1.1.1", "169.254.169.254", "127.0.0.1"},
		"empty.example":    {},
	}
	get := func(t *testing.T, g *netguard.Guard, u string) error {
		t.Helper()
		c := &http.Client{Transport: g.Transport()}
		resp, err := c.Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("GET: %d %q", resp.StatusCode, b)
		}
		return nil
	}
	at := func(host string) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/" }
	redirect := func(from, to string) string { return from + "?to=" + url.QueryEscape(to) }

	for _, tc := range []struct {
		name  string
		allow []string
		url   string
		ok    bool
	}{
		{"loopback without allow rule", nil, srv.URL, false},
		{"loopback allowed by address", []string{"127.0.0.1"}, srv.URL, true},
		{"loopback allowed by network", []string{"127.0.0.0/8"}, srv.URL, true},
		{"name allowed", []string{"hooks.internal"}, at("hooks.internal"), true},
		{"subdomain allowed", []string{"*.corp.internal"}, at("a.corp.internal"), true},
		{"apex of a wildcard is not allowed", []string{"*.hooks.internal"}, at("hooks.internal"), false},
		{"name resolving to loopback", []string{"hooks.internal"}, at("evil.example"), false},
		{"name resolving to metadata", []string{"127.0.0.1"}, at("metadata.example"), false},
		{"name resolving to private", []string{"127.0.0.1"}, at("lan.example"), false},
		{"name resolving to unique-local", []string{"127.0.0.1"}, at("v6.example"), false},
		{"redirect to metadata address", []string{"127.0.0.1"}, redirect(srv.URL, "http://169.254.169.254/latest/meta-data/"), false},
		{"redirect to private name", []string{"127.0.0.1"}, redirect(srv.URL, at("lan.example")), false},
		{"redirect to mapped address", []string{"127.0.0.1"}, redirect(srv.URL, "http://[::ffff:10.0.0.1]/"), false},
		{"redirect to NAT64 address", []string{"127.0.0.1"}, redirect(srv.URL, "http://[64:ff9b::a00:1]/"), false},
		{"redirect to 6to4 address", []string{"127.0.0.1"}, redirect(srv.URL, "http://[2002:c0a8:101::1]/"), false},
		{"redirect to allowed loopback name", []string{"127.0.0.1"}, redirect(srv.URL, at("hooks.internal")), true},
		// Only the allowed address of several is dialed (the dialer hook
		// fails the test on any other).
		{"name with private and allowed addresses", []string{"127.0.0.1"}, at("mixed.example"), true},
		{"name without addresses", []string{"127.0.0.1"}, at("empty.example"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dials atomic.Int64
			err := get(t, guard(t, tc.allow, names, &dials), tc.url)
			if tc.ok && err != nil {
				t.Fatalf("GET: %v", err)
			}
			if !tc.ok && !errors.Is(err, netguard.ErrRefused) {
				t.Fatalf("GET = %v, want ErrRefused", err)
			}
		})
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"", "*.", "http://x", "a b", "user@host", "10.0.0.0/33", "-x.example", "x..example"} {
		if _, err := netguard.New([]string{a}); err == nil {
			t.Errorf("New(%q) accepted", a)
		}
	}
	if _, err := netguard.New([]string{"hooks.internal", "*.corp.example", "127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "Hooks.Internal."}); err != nil {
		t.Errorf("New(valid entries): %v", err)
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	t.Parallel()
	g, err := netguard.New([]string{"hooks.internal", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "::1": true, "[::1]": true, "hooks.internal": true, "10.2.3.4": true,
		"example.com": false, "8.8.8.8": false, "192.168.0.1": false, "hooks.internal.example": false,
	} {
		if got := g.PlainHTTPAllowed(host); got != want {
			t.Errorf("PlainHTTPAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCallbackURLs(t *testing.T) {
	t.Parallel()
	loopback, err := netguard.New([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	strict := netguard.CallbackURLs{}
	for _, tc := range []struct {
		p   netguard.CallbackURLs
		url string
		ok  bool
	}{
		{strict, "https://hooks.example/cb", true},
		{strict, "https://hooks.example:8443/cb?x=1", true},
		{strict, "http://hooks.example/cb", false},
		{strict, "https://user:pw@hooks.example/cb", false},
		{strict, "ftp://hooks.example/cb", false},
		{strict, "/relative", false},
		{strict, "https:opaque", false},
		{strict, "https://127.0.0.1/cb", false},
		{strict, "https://169.254.169.254/latest", false},
		{strict, "https://10.0.0.1/cb", false},
		{strict, "https://[::1]/cb", false},
		{strict, "https://[::ffff:192.168.0.1]/cb", false},
		{strict, "https://[fd00::1]/cb", false},
		{strict, "https://0.0.0.0/cb", false},
		{strict, "https://8.8.8.8/cb", true},
		{netguard.CallbackURLs{Guard: loopback}, "http://127.0.0.1:8080/cb", true},
		{netguard.CallbackURLs{Guard: loopback}, "http://10.0.0.1/cb", false},
		{netguard.CallbackURLs{Hosts: []string{"*.partner.example"}}, "https://a.partner.example/cb", true},
		{netguard.CallbackURLs{Hosts: []string{"*.partner.example"}}, "https://other.example/cb", false},
	} {
		err := tc.p.Check(tc.url)
		if tc.ok && err != nil {
			t.Errorf("Check(%q) = %v, want nil", tc.url, err)
		}
		if !tc.ok {
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Errorf("Check(%q) = %v, want EINVALID", tc.url, err)
			} else if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), tc.url) {
				t.Errorf("Check(%q) echoes the URL: %v", tc.url, err)
			}
		}
	}
}
