package config

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCallbacksAndSuppression(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
callbacks:
  secret: ${CB_SECRET}
  window: 2h
  timeout: 5s
  allow_hosts: [hooks.example.com, "*.partner.example"]
  forbid_private_addresses: true
  allow_private_hosts: [127.0.0.1, "*.corp.example", 10.0.0.0/8]
suppression: {enabled: true}
`, map[string]string{"CB_SECRET": "0123456789abcdef-secret"})
	want := Callbacks{Secret: "0123456789abcdef-secret", Window: 2 * time.Hour, Timeout: 5 * time.Second,
		AllowHosts: []string{"hooks.example.com", "*.partner.example"}, ForbidPrivateAddresses: true,
		AllowPrivateHosts: []string{"127.0.0.1", "*.corp.example", "10.0.0.0/8"}}
	if diff := cmp.Diff(want, c.Callbacks); diff != "" {
		t.Errorf("callbacks (-want +got):\n%s", diff)
	}
	if !c.Suppression.Enabled {
		t.Error("suppression not enabled")
	}
	if d := Default(); d.Suppression.Enabled || d.Callbacks.Window != 24*time.Hour || d.Callbacks.Timeout != 10*time.Second || !d.Callbacks.ForbidPrivateAddresses {
		t.Errorf("defaults: %+v %+v", d.Callbacks, d.Suppression)
	}

	es := parseErrors(t, `
callbacks:
  secret: short
  window: 10s
  timeout: 2m
  allow_hosts: ["https://hooks.example.com/x", "*."]
  allow_private_hosts: [ok.internal, "http://x", 10.0.0.0/40]
`, nil)
	var paths []string
	for _, e := range es {
		paths = append(paths, e.Path)
		if strings.Contains(e.Msg, "short") {
			t.Errorf("error quotes the secret: %s", e.Msg)
		}
	}
	sort.Strings(paths)
	wantPaths := []string{"callbacks.allow_hosts[0]", "callbacks.allow_hosts[1]", "callbacks.allow_private_hosts[1]", "callbacks.allow_private_hosts[2]", "callbacks.secret", "callbacks.timeout", "callbacks.window"}
	if diff := cmp.Diff(wantPaths, paths); diff != "" {
		t.Errorf("error paths (-want +got):\n%s", diff)
	}
}
