package httprecipe_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/connector/httprecipe"
	"github.com/lethe-privacy/lethe/internal/config"
)

// TestConfigTargets: http targets in lethe's configuration file are built
// through the registry entry; a target's own mistakes name the config
// file's line, a recipe file's name the recipe's line, and ${VAR}
// credentials are never shown.
func TestConfigTargets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	own := filepath.Join(dir, "acme.yaml")
	if err := os.WriteFile(own, []byte("format: 1\nname: acme\nidentities: {email: email}\nerase:\n  steps:\n    - method: DELETE\n      path: \"/users/{{email}}\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `
targets:
  - name: segment
    kind: http
    recipe: segment
    settings:
      token: ${SEGMENT_TOKEN}
  - name: hubspot
    kind: http
    recipe: hubspot
    settings:
      token: ${HUBSPOT_TOKEN}
    batchsize: 3
  - name: acme
    kind: http
    recipe: ` + own + `
    base_url: https://acme.example
`
	env := map[string]string{"SEGMENT_TOKEN": "seg-secret-0123456789", "HUBSPOT_TOKEN": "hub-secret-0123456789"}
	cfg, err := config.Parse([]byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	in := httprecipe.Info()
	var errs []string
	for _, tg := range cfg.ConnectorTargets() {
		if tg.Kind != in.Kind {
			t.Fatalf("kind %q", tg.Kind)
		}
		c, err := in.New(context.Background(), tg)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if tg.Name != "segment" {
			t.Errorf("%s: accepted", tg.Name)
		}
		c.(*httprecipe.Connector).Close()
	}
	all := strings.Join(errs, "\n")
	for _, want := range []string{
		"targets[1].batchsize: unknown field", "(line 13)",
		"acme.yaml.erase.steps[0].path: unknown variable {{email}}", "(line 7)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("errors do not say %q:\n%s", want, all)
		}
	}
	for _, v := range env {
		if strings.Contains(all, v) {
			t.Errorf("errors show a credential")
		}
	}
}
