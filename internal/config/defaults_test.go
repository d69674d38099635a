package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
)

// TestDefaultsMatchOwners: every default of Default is its owning
// package's, so that a file leaving a field out gets what the code it
// configures would do without a file.
func TestDefaultsMatchOwners(t *testing.T) {
	t.Parallel()
	d := config.Default()
	limit := func(l config.Limit) [3]any { return [3]any{l.Limit, l.Window, l.Block} }
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"workers.concurrency", d.Workers.Concurrency, pipeline.DefaultWorkers},
		{"workers.max_attempts", d.Workers.MaxAttempts, pipeline.DefaultMaxAttempts},
		{"workers.backoff_base", d.Workers.BackoffBase, pipeline.DefaultBackoffBase},
		{"workers.backoff_max", d.Workers.BackoffMax, pipeline.DefaultBackoffMax},
		{"workers.job_timeout", d.Workers.JobTimeout, pipeline.DefaultJobTimeout},
		{"deadlines.warn_before", d.Deadlines.WarnBefore, pipeline.DefaultWarnBefore},
		{"deadlines.sweep_interval", d.Deadlines.SweepInterval, pipeline.DefaultSweepInterval},
		{"callbacks.window", d.Callbacks.Window, pipeline.DefaultCallbackWindow},
		{"callbacks.timeout", d.Callbacks.Timeout, pipeline.DefaultCallbackTimeout},
		{"resolve.max_identities", d.Resolve.MaxIdentities, pipeline.DefaultMaxIdentities},
		{"review.sweep_interval", d.Review.SweepInterval, pipeline.DefaultHoldSweepInterval},
		{"http.max_body_bytes", d.HTTP.MaxBodyBytes, int64(httpapi.DefaultMaxBodyBytes)},
		{"http.read_header_timeout", d.HTTP.ReadHeaderTimeout, httpapi.ReadHeaderTimeout},
		{"http.read_timeout", d.HTTP.ReadTimeout, httpapi.ReadTimeout},
		{"http.write_timeout", d.HTTP.WriteTimeout, httpapi.WriteTimeout},
		{"http.idle_timeout", d.HTTP.IdleTimeout, httpapi.IdleTimeout},
		{"rate_limits.native", limit(d.RateLimits.Native), [3]any{httpapi.DefaultRule.Limit, httpapi.DefaultRule.Window, httpapi.DefaultRule.Block}},
		{"rate_limits.connect", limit(d.RateLimits.Connect), [3]any{connect.DefaultRule.Limit, connect.DefaultRule.Window, connect.DefaultRule.Block}},
		{"rate_limits.s2s", limit(d.RateLimits.S2S), [3]any{s2s.DefaultRule.Limit, s2s.DefaultRule.Window, s2s.DefaultRule.Block}},
	} {
		if !cmp.Equal(c.got, c.want) {
			t.Errorf("%s: config default %v, its owner's %v", c.name, c.got, c.want)
		}
	}
}

// docRow is one default stated by docs/configuration.md.
type docRow struct {
	path  string // "workers.concurrency"
	value string // YAML for the value, e.g. "10" or "{limit: 600, window: 1m, block: 1m}"
	line  int
}

var (
	sectionHeading = regexp.MustCompile("^### `([a-z_]+)`$")
	proseDefault   = regexp.MustCompile("Default (`[^`]*`|empty)")
	firstCode      = regexp.MustCompile("^`([^`]*)`")
)

// defaultCells are default cells that are words, not values, and the
// value each stands for.
var defaultCells = map[string]string{
	"none":               "[]",
	"derived":            `""`,
	"empty":              `""`,
	"`job_timeout` + 1m": "0s", // 0 is how the file asks for job_timeout + 1m
}

// docDefaults reads every default that docs/configuration.md states: the
// "default" column of each field table, and the "Default ..." sentence of
// each section without one.
func docDefaults(t *testing.T) []docRow {
	t.Helper()
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var rows []docRow
	section, defaultCol, tableSeen := "", -1, false
	cellValue := func(cell string, line int) string {
		if v, ok := defaultCells[cell]; ok {
			return v
		}
		m := firstCode.FindStringSubmatch(cell)
		if m == nil {
			t.Fatalf("docs/configuration.md:%d: default %q is neither a `value` nor a known word", line, cell)
		}
		return m[1]
	}
	for i, l := range lines {
		if m := sectionHeading.FindStringSubmatch(l); m != nil {
			section, defaultCol, tableSeen = m[1], -1, false
			continue
		}
		if strings.HasPrefix(l, "## ") {
			section = ""
			continue
		}
		if section == "" {
			continue
		}
		if !strings.HasPrefix(l, "|") {
			defaultCol = -1
			if m := proseDefault.FindStringSubmatch(l); m != nil && !tableSeen && !hasRow(rows, section) {
				cell := strings.Trim(m[1], "`")
				if m[1] == "empty" {
					cell = defaultCells["empty"]
				}
				rows = append(rows, docRow{path: section, value: cell, line: i + 1})
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		switch {
		case defaultCol < 0: // a header row
			for j, c := range cells {
				if c == "default" {
					defaultCol = j
				}
			}
			if defaultCol > 0 {
				tableSeen = true
			}
		case strings.HasPrefix(cells[0], "---"):
		default:
			key := strings.Trim(cells[0], "`")
			rows = append(rows, docRow{path: section + "." + key, value: cellValue(cells[defaultCol], i+1), line: i + 1})
		}
	}
	return rows
}

func hasRow(rows []docRow, section string) bool {
	for _, r := range rows {
		if r.path == section || strings.HasPrefix(r.path, section+".") {
			return true
		}
	}
	return false
}

// yamlFor writes path: value as a YAML document.
func yamlFor(path, value string) string {
	parts := strings.Split(path, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i < len(parts)-1 {
			b.WriteString("\n")
		}
	}
	b.WriteString(" " + value + "\n")
	return b.String()
}

// TestConfigurationDocDefaults: every default docs/configuration.md
// states is the real one. Each row's value is loaded as a file setting
// only that field; the result must equal Default.
func TestConfigurationDocDefaults(t *testing.T) {
	t.Parallel()
	rows := docDefaults(t)
	if len(rows) < 30 {
		t.Fatalf("read only %d defaults from docs/configuration.md; did its layout change?", len(rows))
	}
	want := config.Default()
	opts := cmp.Options{cmpopts.IgnoreUnexported(config.Config{}, config.Target{}), cmpopts.EquateEmpty()}
	// Listing regulations replaces the whole set: they are checked as one.
	var regulations strings.Builder
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.path] {
			t.Errorf("docs/configuration.md:%d: %s is documented twice", r.line, r.path)
		}
		seen[r.path] = true
		if rest, ok := strings.CutPrefix(r.path, "regulations."); ok {
			regulations.WriteString("  " + rest + ": " + r.value + "\n")
			continue
		}
		got, err := config.Parse([]byte(yamlFor(r.path, r.value)), nil)
		if err != nil {
			t.Errorf("docs/configuration.md:%d: %s: %s does not load: %v", r.line, r.path, r.value, err)
			continue
		}
		if diff := cmp.Diff(want, got, opts); diff != "" {
			t.Errorf("docs/configuration.md:%d: %s: documented default %s is not the real one (-real +documented):\n%s", r.line, r.path, r.value, diff)
		}
	}
	got, err := config.Parse([]byte("regulations:\n"+regulations.String()), nil)
	if err != nil {
		t.Fatalf("documented regulations do not load: %v", err)
	}
	if diff := cmp.Diff(want.Regulations, got.Regulations); diff != "" {
		t.Errorf("documented regulations are not the real defaults (-real +documented):\n%s", diff)
	}
	// Every field with a default is documented.
	for _, p := range []string{
		"listen", "db", "admin_token",
		"workers.concurrency", "workers.max_attempts", "workers.backoff_base", "workers.backoff_max",
		"workers.job_timeout", "workers.shutdown_timeout", "workers.rescue_after",
		"http.max_body_bytes", "http.read_header_timeout", "http.read_timeout", "http.write_timeout", "http.idle_timeout",
		"rate_limits.native", "rate_limits.connect", "rate_limits.s2s",
		"retention.request_details", "retention.legal", "retention.register",
		"callbacks.secret", "callbacks.window", "callbacks.timeout", "callbacks.allow_hosts", "callbacks.forbid_private_addresses",
		"deadlines.warn_before", "deadlines.sweep_interval", "suppression.enabled",
		"rate_limits.drp", "rate_limits.opendsr", "drp.enabled", "drp.business_id", "drp.agents", "drp.clock_skew",
		"opendsr.enabled", "opendsr.domain", "opendsr.certificate_file", "opendsr.key_file",
	} {
		if !seen[p] {
			t.Errorf("docs/configuration.md states no default for %s", p)
		}
	}
}
