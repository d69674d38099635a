package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
)

// envMap is a fake environment.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

var exampleEnv = envMap(map[string]string{
	"LETHE_ADMIN_TOKEN": "example-admin-token-0123456789",
	"SHOP_DSN":          "postgres://shop:pw@localhost/shop",
})

// cmpConfig compares configs by their exported fields; lines and the
// targets' option nodes are bookkeeping.
var cmpConfig = cmpopts.IgnoreUnexported(Config{}, Target{})

// mustParse parses src or fails the test.
func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse([]byte(src), envMap(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// parseErrors parses src and returns its Errors, failing if there are none.
func parseErrors(t *testing.T, src string, env map[string]string) Errors {
	t.Helper()
	_, err := Parse([]byte(src), envMap(env))
	if err == nil {
		t.Fatalf("Parse succeeded, want errors")
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse error %q is not Errors", err)
	}
	return es
}

func TestExampleFileLoads(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("..", "..", "lethe.example.yaml"), exampleEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	// Every value the example spells out is the default, so the example
	// doubles as a check that docs and Default agree; only what has no
	// default differs.
	want := Default()
	want.AdminToken = "example-admin-token-0123456789"
	want.RateLimits.Clients = map[string]ClientLimits{
		"partner-a": {S2S: &Limit{Limit: 500, Window: 10 * time.Minute, Block: 10 * time.Minute}},
	}
	want.Targets = []Target{{Name: "shop", Kind: "sql"}}
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("example config (-want +got):\n%s", diff)
	}

	// The connector's keys reach it expanded. (sqlconn's own tests own
	// what they mean; a generic map keeps this test off its internals.)
	var shop map[string]any
	if err := c.Targets[0].Decode(&shop); err != nil {
		t.Fatalf("Decode shop: %v", err)
	}
	if shop["dsn"] != "postgres://shop:pw@localhost/shop" || shop["driver"] != "postgres" {
		t.Errorf("shop options = %v, want driver postgres and the expanded SHOP_DSN", shop)
	}
	if _, ok := shop["name"]; ok {
		t.Error("name reached the connector's options")
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		c := mustParse(t, src, nil)
		if diff := cmp.Diff(Default(), c, cmpConfig); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", src, diff)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `
listen: ":9090"
db: postgres://lethe@localhost/lethe
regulations:
  lgpd: 15d
workers:
  concurrency: 3
  backoff_max: 0d12h
http: {max_body_bytes: 0x2000}
retention: {request_details: 0s}
resolve: {max_identities: 50}
`, nil)
	want := Default()
	want.Resolve.MaxIdentities = 50
	want.Listen = ":9090"
	want.DB = "postgres://lethe@localhost/lethe"
	// A listed map replaces the default set: gdpr and ccpa are gone.
	want.Regulations = map[lethe.Regulation]time.Duration{"lgpd": 15 * 24 * time.Hour}
	want.Workers.Concurrency = 3
	want.Workers.BackoffMax = 12 * time.Hour
	want.HTTP.MaxBodyBytes = 8192
	want.Retention.RequestDetails = 0
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		path, msg string // one of the errors must have this path and contain msg
	}{
		{"unknown top-level field", "lisen: :80\n", "lisen", "unknown field"},
		{"unknown nested field", "workers: {concurency: 5}\n", "workers.concurency", "unknown field"},
		{"unknown field in limit", "rate_limits: {s2s: {limit: 1, window: 1m, block: 1m, burst: 2}}\n", "rate_limits.s2s.burst", "unknown field"},
		{"unknown profile in override", "rate_limits: {clients: {a: {admin: {limit: 1, window: 1m, block: 1m}}}}\n", "rate_limits.clients.a.admin", "unknown field"},
		{"duplicate key", "listen: :80\nlisten: :81\n", "listen", "duplicate key"},
		{"listen without port", "listen: localhost\n", "listen", "host:port"},
		{"listen bad port", "listen: 'localhost:http'\n", "listen", "port must be a number"},
		{"db empty", "db: ''\n", "db", "must not be empty"},
		{"db other scheme", "db: mysql://root@localhost/x\n", "db", "unsupported URL scheme"},
		{"admin token short", "admin_token: short\n", "admin_token", "at least 16"},
		{"no regulations", "regulations: {}\n", "regulations", "at least one"},
		{"regulation name", "regulations: {GDPR: 30d}\n", "regulations.GDPR", "[a-z0-9_-]+"},
		{"regulation zero", "regulations: {gdpr: 0s}\n", "regulations.gdpr", "positive"},
		{"regulation negative", "regulations: {gdpr: -1h}\n", "regulations.gdpr", "positive"},
		{"regulation not a duration", "regulations: {gdpr: 30}\n", "regulations.gdpr", "must be a duration"},
		{"concurrency zero", "workers: {concurrency: 0}\n", "workers.concurrency", "must be between 1 and 1000"},
		{"concurrency huge", "workers: {concurrency: 5000}\n", "workers.concurrency", "must be between 1 and 1000"},
		{"concurrency text", "workers: {concurrency: ten}\n", "workers.concurrency", "must be an integer"},
		{"concurrency overflow", "workers: {concurrency: 99999999999999999999}\n", "workers.concurrency", "out of range"},
		{"max attempts", "workers: {max_attempts: 0}\n", "workers.max_attempts", "between 1 and 100"},
		{"backoff base zero", "workers: {backoff_base: 0s}\n", "workers.backoff_base", "between 1ms and 1h"},
		{"backoff max below base", "workers: {backoff_base: 1m, backoff_max: 1s}\n", "workers.backoff_max", "at least workers.backoff_base"},
		{"job timeout", "workers: {job_timeout: 2d}\n", "workers.job_timeout", "between 1s and 24h"},
		{"shutdown timeout", "workers: {shutdown_timeout: 0s}\n", "workers.shutdown_timeout", "between 1s and 1h"},
		{"rescue not after job timeout", "workers: {job_timeout: 2m, rescue_after: 2m}\n", "workers.rescue_after", "must exceed workers.job_timeout"},
		{"rescue too long", "workers: {rescue_after: 26h}\n", "workers.rescue_after", "between 1s and 25h"},
		{"max identities negative", "resolve: {max_identities: -1}\n", "resolve.max_identities", "between 1 and 100000"},
		{"max identities too many", "resolve: {max_identities: 100001}\n", "resolve.max_identities", "between 1 and 100000"},
		{"workers is a list", "workers: [1, 2]\n", "workers", "must be a mapping, not a list"},
		{"body too small", "http: {max_body_bytes: 10}\n", "http.max_body_bytes", "between 1024 and 16777216"},
		{"limit zero", "rate_limits: {native: {limit: 0, window: 1m, block: 1m}}\n", "rate_limits.native.limit", "at least 1"},
		{"window zero", "rate_limits: {connect: {limit: 1, window: 0s, block: 1m}}\n", "rate_limits.connect.window", "positive"},
		{"override incomplete", "rate_limits: {clients: {partner-a: {s2s: {limit: 500}}}}\n", "rate_limits.clients.partner-a.s2s.window", "positive"},
		{"retention negative", "retention: {request_details: -1h}\n", "retention.request_details", "negative"},
		{"targets not a list", "targets: {name: shop}\n", "targets", "must be a list"},
		{"target not a mapping", "targets: [shop]\n", "targets[0]", "must be a mapping"},
		{"target name missing", "targets: [{kind: sql}]\n", "targets[0].name", "required"},
		{"target name pattern", "targets: [{name: Shop, kind: sql}]\n", "targets[0].name", "[a-z0-9_-]+"},
		{"target kind missing", "targets: [{name: shop}]\n", "targets[0].kind", "required"},
		{"target kind a list", "targets: [{name: shop, kind: [sql]}]\n", "targets[0].kind", "must be a single value"},
		{"target duplicate", "targets: [{name: a, kind: sql}, {name: b, kind: sql}, {name: a, kind: redis}]\n", "targets[2].name", "duplicate of targets[0].name"},
		{"not a mapping", "just text\n", "(top level)", "must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			es := parseErrors(t, tt.src, nil)
			for _, e := range es {
				if e.Path == tt.path && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("want an error at %s containing %q, got:\n%v", tt.path, tt.msg, es)
		})
	}
}

func TestErrorsAreCollectedWithLines(t *testing.T) {
	t.Parallel()
	es := parseErrors(t, `listen: nowhere
workers:
  concurrency: 0
  max_atempts: 3
targets:
  - name: shop
    kind: sql
  - name: shop
    kind: sql
`, nil)
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	want := []string{
		// Decoding problems first, in file order, then validation.
		"workers.max_atempts: unknown field (known: concurrency, max_attempts, backoff_base, backoff_max, job_timeout, shutdown_timeout, rescue_after) (line 4)",
		"listen: must be host:port, e.g. 127.0.0.1:8080 or :8080 (line 1)",
		"workers.concurrency: must be between 1 and 1000 (line 3)",
		"targets[1].name: duplicate of targets[0].name (line 8)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(es.Error(), "invalid configuration (4 problems):\n\t") {
		t.Errorf("Errors.Error() = %q", es.Error())
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"TOKEN":   "tok-0123456789abcdef",
		"WORKERS": "25",
		"EMPTY":   "",
		"HOST":    "10.0.0.1",
		"BODY":    "65_536",
	}
	c := mustParse(t, `
listen: ${HOST}:8080
admin_token: "${TOKEN}"
workers:
  concurrency: ${WORKERS}
  backoff_base: ${EMPTY}2s
http: {max_body_bytes: "${BODY}"}
targets:
  - name: shop
    kind: sql
    password: pa$$word
    port: ${WORKERS}
    note: ${EMPTY}
    ${WORKERS}: key names are not expanded
`, env)
	if c.Listen != "10.0.0.1:8080" || c.AdminToken != env["TOKEN"] || c.Workers.Concurrency != 25 || c.Workers.BackoffBase != 2*time.Second {
		t.Errorf("got listen %q, token %q, concurrency %d, backoff %s", c.Listen, c.AdminToken, c.Workers.Concurrency, c.Workers.BackoffBase)
	}
	// Quoted (as flow collections need) still fills a number.
	if c.HTTP.MaxBodyBytes != 65536 {
		t.Errorf("max_body_bytes = %d, want 65536", c.HTTP.MaxBodyBytes)
	}
	var opts struct {
		Password string `yaml:"password"`
		Port     int    `yaml:"port"`
		Note     *string
		Rest     string `yaml:"${WORKERS}"`
	}
	if err := c.Targets[0].Decode(&opts); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if opts.Password != "pa$word" || opts.Port != 25 || opts.Rest != "key names are not expanded" {
		t.Errorf("options = %+v", opts)
	}
	// An empty variable gives an empty string, not null (which would leave
	// the field at its default without a word).
	if opts.Note == nil || *opts.Note != "" {
		t.Errorf("note = %v, want pointer to empty string", opts.Note)
	}
}

func TestEnvExpansionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, path, msg string
	}{
		{"unset", "admin_token: ${LETHE_ADMIN_TOKEN}\n", "admin_token", "environment variable LETHE_ADMIN_TOKEN is not set"},
		{"unset in target", "targets:\n  - name: a\n    kind: sql\n    dsn: ${DSN}\n", "targets[0].dsn", "DSN is not set"},
		{"unset in list", "targets:\n  - name: a\n    kind: sql\n    hosts: [a, '${H}']\n", "targets[0].hosts[1]", "H is not set"},
		{"lone dollar", "admin_token: abc$def0123456789\n", "admin_token", `write "$$" for a literal "$"`},
		{"unterminated", "admin_token: ${TOKEN\n", "admin_token", "unterminated"},
		{"bad name", "admin_token: ${1X}\n", "admin_token", "invalid variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			es := parseErrors(t, tt.src, nil)
			for _, e := range es {
				if e.Path == tt.path && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("want an error at %s containing %q, got:\n%v", tt.path, tt.msg, es)
		})
	}
}

func TestExpandString(t *testing.T) {
	t.Parallel()
	env := envMap(map[string]string{"A": "x", "B": "$B", "E": ""})
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"${A}", "x"},
		{"a${A}b${A}c", "axbxc"},
		{"$$", "$"},
		{"$${A}", "${A}"},
		{"$$$$", "$$"},
		{"${B}", "$B"}, // values are not expanded again
		{"${E}", ""},
		{"${A}$$${A}", "x$x"},
	}
	for _, tt := range tests {
		got, problems := expandString(tt.in, env)
		if len(problems) > 0 || got != tt.want {
			t.Errorf("expandString(%q) = %q, %v; want %q", tt.in, got, problems, tt.want)
		}
	}
}

// TestSecretsNeverEchoed puts a secret where every kind of validation and
// decoding error fires and checks no message carries any of it.
func TestSecretsNeverEchoed(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Value-9f8e7d"
	env := map[string]string{"S": secret, "URL": "mysql://root:" + secret + "@db/x"}
	src := `
listen: ${S}
db: ${URL}
admin_token: x${S}
regulations: {gdpr: "${S}"}
workers:
  concurrency: ${S}
  job_timeout: ${S}
  shutdown_timeout: "${S}:1"
http: {max_body_bytes: "${S}"}
rate_limits:
  native: {limit: "${S}", window: 1m, block: 1m}
targets:
  - name: ${S}
    kind: sql
  - name: ${S}
    kind: sql
`
	_, err := Parse([]byte(src), envMap(env))
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "9f8e7d") {
		t.Fatalf("error echoes the secret:\n%v", err)
	}
	var es Errors
	errors.As(err, &es)
	if len(es) < 8 {
		t.Errorf("want an error per bad field, got %d:\n%v", len(es), err)
	}

	// The connector's decode errors too.
	c := mustParse(t, "targets:\n  - {name: a, kind: sql, port: '${S}', timeout: '${S}', addr: '${S}'}\n", env)
	var opts struct {
		Port    int           `yaml:"port"`
		Timeout time.Duration `yaml:"timeout"`
		Addr    ipText        `yaml:"addr"`
	}
	err = c.Targets[0].Decode(&opts)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("Decode error = %v; want an error without the secret", err)
	}
}

// ipText is a TextUnmarshaler whose error quotes its input, as many do.
type ipText string

func (p *ipText) UnmarshalText(b []byte) error {
	return errors.New("bad address " + string(b))
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	c := mustParse(t, "listen: 127.0.0.1:1\ndb: a.db\n", map[string]string{
		"LETHE_LISTEN": ":7000",
		"LETHE_DB":     "postgres://x@y/z",
	})
	if c.Listen != ":7000" || c.DB != "postgres://x@y/z" {
		t.Errorf("listen %q, db %q; want the environment's", c.Listen, c.DB)
	}
	es := parseErrors(t, "listen: 127.0.0.1:1\n", map[string]string{"LETHE_LISTEN": "nope"})
	if got := es[0].Error(); got != "listen: must be host:port, e.g. 127.0.0.1:8080 or :8080 (set by LETHE_LISTEN)" {
		t.Errorf("error = %q", got)
	}
}

func TestTargetDecode(t *testing.T) {
	t.Parallel()
	type table struct {
		Name   string `yaml:"name"`
		Action string `yaml:"action"`
	}
	type options struct {
		DSN     string        `yaml:"dsn"`
		Timeout time.Duration `yaml:"timeout"`
		Tables  []table       `yaml:"tables"`
		Batch   int           `yaml:"batch"`
		Verify  bool          `yaml:"verify"`
	}
	c := mustParse(t, `
targets:
  - &shop
    name: shop
    kind: sql
    dsn: postgres://shop
    timeout: 1d
    verify: yes
    tables:
      - {name: users, action: delete}
  - <<: *shop
    name: shop-eu
    batch: 0x10
  - name: bad
    kind: sql
    dsnn: x
    batch: many
    tables:
      - {name: orders, action: delete, colour: red}
  - name: bare
    kind: sql
`, nil)
	if len(c.Targets) != 4 {
		t.Fatalf("got %d targets", len(c.Targets))
	}
	var shop, eu, bare options
	if err := c.Targets[0].Decode(&shop); err != nil {
		t.Fatalf("Decode shop: %v", err)
	}
	want := options{DSN: "postgres://shop", Timeout: 24 * time.Hour, Verify: true, Tables: []table{{"users", "delete"}}}
	if diff := cmp.Diff(want, shop); diff != "" {
		t.Errorf("shop (-want +got):\n%s", diff)
	}

	// The merge key brings in the anchored target; its own keys win.
	if c.Targets[1].Name != "shop-eu" || c.Targets[1].Kind != "sql" {
		t.Errorf("merged target = %q/%q", c.Targets[1].Name, c.Targets[1].Kind)
	}
	if err := c.Targets[1].Decode(&eu); err != nil {
		t.Fatalf("Decode shop-eu: %v", err)
	}
	want.Batch = 16
	if diff := cmp.Diff(want, eu); diff != "" {
		t.Errorf("shop-eu (-want +got):\n%s", diff)
	}

	// Connectors get the same strictness and paths as the rest of the file.
	var bad options
	err := c.Targets[2].Decode(&bad)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Decode bad = %v, want Errors", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Path+": "+e.Msg)
	}
	wantErrs := []string{
		"targets[2].dsnn: unknown field (known: dsn, timeout, tables, batch, verify)",
		"targets[2].batch: must be an integer",
		"targets[2].tables[0].colour: unknown field (known: name, action)",
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("Decode errors (-want +got):\n%s", diff)
	}

	// A target with no keys of its own leaves the options as they were.
	bare.Batch = 7
	if err := c.Targets[3].Decode(&bare); err != nil || bare.Batch != 7 {
		t.Errorf("Decode bare = %v, batch %d", err, bare.Batch)
	}
	if err := c.Targets[3].Decode(bare); err == nil {
		t.Error("Decode of a non-pointer succeeded")
	}

	ct := c.ConnectorTargets()
	if len(ct) != 4 || ct[1].Name != "shop-eu" || ct[1].Kind != "sql" {
		t.Fatalf("ConnectorTargets = %+v", ct)
	}
	var viaConnector options
	if err := ct[0].Decode(&viaConnector); err != nil || viaConnector.DSN != "postgres://shop" {
		t.Errorf("connector.Target.Decode = %v, %+v", err, viaConnector)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"0", 0, true},
		{"30d", 30 * day, true},
		{"1d12h", day + 12*time.Hour, true},
		{"0d", 0, true},
		{"-1h", -time.Hour, true}, // parsed; validation rejects it
		{"d", 0, false},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"1d-1h", 0, false},
		{"1dd", 0, false},
		{"30", 0, false},
		{"", 0, false},
		{"99999999999d", 0, false},
		{"106751d24h", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseDuration(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRateLimitsFor(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("..", "..", "lethe.example.yaml"), exampleEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := c.RateLimits
	if got := r.For(ProfileS2S, "partner-a"); got.Limit != 500 {
		t.Errorf("partner-a s2s = %+v, want the override", got)
	}
	if got := r.For(ProfileNative, "partner-a"); got != r.Native {
		t.Errorf("partner-a native = %+v, want the profile's", got)
	}
	if got := r.For(ProfileS2S, "other"); got != r.S2S {
		t.Errorf("other s2s = %+v, want the profile's", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load = %v, want ErrNotExist", err)
	}
}

func TestSyntaxAndDocuments(t *testing.T) {
	t.Parallel()
	if _, err := Parse([]byte("listen: [\n"), nil); err == nil || !strings.HasPrefix(err.Error(), "parse config: ") {
		t.Errorf("bad YAML: %v", err)
	}
	if _, err := Parse([]byte("listen: :1\n---\nlisten: :2\n"), nil); err == nil || !strings.Contains(err.Error(), "one YAML document") {
		t.Errorf("two documents: %v", err)
	}
}
