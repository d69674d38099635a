// Package config is lethe's typed configuration: one YAML file, loaded and
// validated once at start, with ${VAR} taken from the environment so
// secrets stay out of the file. It also carries the data map (targets),
// whose connector-specific keys are kept as YAML and decoded, just as
// strictly, by each connector through connector.Target.Decode.
//
// docs/configuration.md is the reference for every field;
// lethe.example.yaml at the repository root is a commented example that a
// test loads, so it cannot drift from the code.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// Config is the whole configuration. Every field's default is the value
// Default returns; a field missing from the file keeps it.
type Config struct {
	// Listen is the HTTP address, host:port. Default "127.0.0.1:8080".
	// The environment variable LETHE_LISTEN, when set, overrides the file.
	Listen string `yaml:"listen"`
	// DB is the database: a file path selects embedded SQLite, a
	// postgres:// or postgresql:// URL selects PostgreSQL. Default
	// "./lethe.db". LETHE_DB, when set, overrides the file.
	DB string `yaml:"db"`
	// AdminToken is the bearer token of the admin API. Default "" (the
	// admin API is disabled). When set it must be at least 16 characters;
	// write it as ${LETHE_ADMIN_TOKEN} rather than in the file.
	AdminToken string `yaml:"admin_token"`
	// Regulations maps each accepted regulation to its response period
	// (the due date is received + period). Default gdpr: 720h (30 days),
	// ccpa: 1080h (45 days). Listing regulations replaces the default set:
	// a request naming an unlisted regulation is refused.
	Regulations map[lethe.Regulation]time.Duration `yaml:"regulations"`
	// Workers paces the pipeline; each field states its default.
	Workers Workers `yaml:"workers"`
	// HTTP tunes the server; each field states its default.
	HTTP HTTP `yaml:"http"`
	// RateLimits limits each API per client; each field states its default.
	RateLimits RateLimits `yaml:"rate_limits"`
	// Retention bounds what is kept; each field states its default.
	Retention Retention `yaml:"retention"`
	// Callbacks tunes status callbacks; each field states its default.
	Callbacks Callbacks `yaml:"callbacks"`
	// Suppression configures the suppression list; default disabled.
	Suppression Suppression `yaml:"suppression"`
	// Deadlines tunes the deadline sweep; each field states its default
	// (deadlines.go).
	Deadlines Deadlines `yaml:"deadlines"`
	// Resolve bounds resolve; each field states its default (resolve.go).
	Resolve Resolve `yaml:"resolve"`
	// Review holds requests for operators before erasure; each field
	// states its default (review.go).
	Review Review `yaml:"review"`
	// DRP configures the DRP 1.0 provider profile (protocols.go).
	DRP DRP `yaml:"drp"`
	// OpenDSR configures the OpenDSR 2.0 processor profile
	// (protocols.go).
	OpenDSR OpenDSR `yaml:"opendsr"`
	// Targets is the data map: one entry per system holding personal
	// data. Default none.
	Targets []Target `yaml:"targets"`

	// lines maps field paths to file lines for validation errors.
	lines map[string]int
	// overridden names the environment variable that set a field, so an
	// error about it does not point at the file.
	overridden map[string]string
}

// Workers sizes and paces the background pipeline.
type Workers struct {
	// Concurrency is how many jobs run at once, 1..1000. Default 10.
	Concurrency int `yaml:"concurrency"`
	// MaxAttempts is how often a failing job runs before its task fails
	// for good, 1..100. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// BackoffBase is the wait before the first retry; each further retry
	// doubles it. Default 1s.
	BackoffBase time.Duration `yaml:"backoff_base"`
	// BackoffMax caps the wait between retries; at least BackoffBase.
	// Default 10m.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// JobTimeout bounds one run of one job, at most 24h. Default 10m.
	JobTimeout time.Duration `yaml:"job_timeout"`
	// ShutdownTimeout bounds how long running jobs may finish after
	// SIGTERM before they are canceled (and retried after restart), at
	// most 1h. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// RescueAfter is how long a job may stay running before it is taken
	// for lost (its process died) and run again; River looks for such jobs
	// every 30s. It must exceed JobTimeout, or live jobs would run twice,
	// and at most 25h. Default 0, which means JobTimeout + 1m.
	RescueAfter time.Duration `yaml:"rescue_after"`
}

// HTTP tunes the HTTP server.
type HTTP struct {
	// MaxBodyBytes caps a request body, 1024..16777216. Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris),
	// 100ms..5m. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included, 100ms..1h.
	// Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds handling a request and writing the answer,
	// 100ms..1h. Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections left idle, 100ms..1h.
	// Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Rate limit profiles: one per API, named as in RateLimits.
const (
	ProfileNative  = "native"
	ProfileConnect = "connect"
	ProfileS2S     = "s2s"
	ProfileDRP     = "drp"
	ProfileOpenDSR = "opendsr"
)

// Profiles lists every rate limit profile.
var Profiles = []string{ProfileNative, ProfileConnect, ProfileS2S, ProfileDRP, ProfileOpenDSR}

// RateLimits holds the per-client limit of each API profile. The admin is
// counted like one client under the native profile.
type RateLimits struct {
	// Native limits the native API. Default 600 per 1m, blocked 1m.
	Native Limit `yaml:"native"`
	// Connect limits the Connect-style endpoint. Default 600 per 1m,
	// blocked 1m.
	Connect Limit `yaml:"connect"`
	// S2S limits the S2S endpoint. Default 50 per 10m, blocked 10m (the
	// published contract of that endpoint).
	S2S Limit `yaml:"s2s"`
	// DRP limits each DRP agent. Default 600 per 1m, blocked 1m.
	DRP Limit `yaml:"drp"`
	// OpenDSR limits each OpenDSR controller. Default 600 per 1m,
	// blocked 1m.
	OpenDSR Limit `yaml:"opendsr"`
	// Clients overrides limits per client, keyed by client name. An
	// override replaces the whole limit of that profile, so all three of
	// limit, window and block must be given. Default none.
	Clients map[string]ClientLimits `yaml:"clients"`
}

// Limit is a sliding-window limit with a block: more than Limit requests
// within any Window blocks the client for Block. Its defaults are those of the
// profile it sets (see RateLimits); a written-out Limit needs all three.
type Limit struct {
	Limit  int           `yaml:"limit"`  // requests per window, at least 1
	Window time.Duration `yaml:"window"` // positive
	Block  time.Duration `yaml:"block"`  // positive
}

// ClientLimits are one client's overrides. Each defaults to nil, which
// keeps the profile's limit.
type ClientLimits struct {
	Native  *Limit `yaml:"native"`
	Connect *Limit `yaml:"connect"`
	S2S     *Limit `yaml:"s2s"`
	DRP     *Limit `yaml:"drp"`
	OpenDSR *Limit `yaml:"opendsr"`
}

// For returns the limit of profile (ProfileNative, ProfileConnect,
// ProfileS2S) for the client named client, applying its override.
func (r RateLimits) For(profile, client string) Limit {
	var def Limit
	var pick func(ClientLimits) *Limit
	switch profile {
	case ProfileNative:
		def, pick = r.Native, func(c ClientLimits) *Limit { return c.Native }
	case ProfileConnect:
		def, pick = r.Connect, func(c ClientLimits) *Limit { return c.Connect }
	case ProfileS2S:
		def, pick = r.S2S, func(c ClientLimits) *Limit { return c.S2S }
	case ProfileDRP:
		def, pick = r.DRP, func(c ClientLimits) *Limit { return c.DRP }
	case ProfileOpenDSR:
		def, pick = r.OpenDSR, func(c ClientLimits) *Limit { return c.OpenDSR }
	default:
		panic("config: unknown rate limit profile " + strconv.Quote(profile))
	}
	if o, ok := r.Clients[client]; ok {
		if l := pick(o); l != nil {
			return *l
		}
	}
	return def
}

// Retention says how long lethe keeps what it must not keep forever.
type Retention struct {
	// RequestDetails is how long a finished request (status, tasks, counts)
	// stays queryable for support, from its completion; 0 purges it at the
	// next purge run. The audit log and receipts are not affected.
	// Default 168h (7 days).
	RequestDetails time.Duration `yaml:"request_details"`
	// Legal is how long receipts and audit events (which hold no identity
	// values) are kept, from the receipt's issue, to prove what was done;
	// then they are purged too. Default 26280h (3 years).
	Legal time.Duration `yaml:"legal"`
	// Register is how long a closed request stays in the request register
	// (no identities: id, client, regulation, dates, outcome, per-target
	// states, operator actions), from its closing; the CCPA regulations
	// (11 CCR 7101) ask for records of consumer requests kept 24 months.
	// At most Legal, so every request in the register keeps its receipt.
	// Default 17520h (24 months of 730 days).
	Register time.Duration `yaml:"register"`
	// FailedOpen is how long a failed request that nobody closed keeps its
	// identities sealed for a re-drive, from its failure; then the purge
	// closes it as failed for good (actor system, audited, receipt
	// issued again), and its details go request_details later like any
	// closed request's. Default 2160h (90 days).
	FailedOpen time.Duration `yaml:"failed_open"`
}

// Target is one data map entry. Name and Kind are lethe's; every other key
// belongs to the connector of that kind and is kept, already expanded, for
// Decode.
type Target struct {
	// Name identifies the target in tasks, metrics and receipts; unique,
	// [a-z0-9_-]+.
	Name string
	// Kind selects the connector. Whether it exists is checked against the
	// connector registry by the caller, which knows the registry.
	Kind string

	options *yaml.Node // mapping of the connector's keys; nil when built in code
	path    string     // "targets[1]", prefix of Decode's error paths
}

// Decode fills v, a pointer to the connector's options struct, from the
// target's own keys. Unknown keys are errors, as in the rest of the file,
// and errors are Errors with paths like "targets[1].dsn".
func (t Target) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Decode needs a non-nil pointer, got %T", v)
	}
	if t.options == nil {
		return nil
	}
	var errs errorList
	d := decoder{errs: &errs}
	d.decode(t.options, rv.Elem(), t.path)
	return errs.err()
}

// Connector returns the target as the connector package sees it.
func (t Target) Connector() connector.Target {
	return connector.Target{Name: t.Name, Kind: t.Kind, Decode: t.Decode}
}

func (t *Target) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, n.Line, "must be a mapping, not %s", kindName(n))
		return
	}
	t.path = path
	t.options = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for _, p := range d.pairs(n, path) {
		switch p.key.Value {
		case "name":
			d.decode(p.val, reflect.ValueOf(&t.Name).Elem(), joinKey(path, "name"))
		case "kind":
			d.decode(p.val, reflect.ValueOf(&t.Kind).Elem(), joinKey(path, "kind"))
		default:
			t.options.Content = append(t.options.Content, p.key, p.val)
		}
	}
}

// ConnectorTargets returns every target as a connector.Target, in order.
func (c *Config) ConnectorTargets() []connector.Target {
	out := make([]connector.Target, len(c.Targets))
	for i, t := range c.Targets {
		out[i] = t.Connector()
	}
	return out
}

// Defaults this package owns: what only the configuration decides. Every
// other default is its owning package's (the server's, each API profile's,
// the pipeline's) and taken from there.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDB              = "./lethe.db"
	DefaultShutdownTimeout = 30 * time.Second
	DefaultRequestDetails  = 7 * 24 * time.Hour
	DefaultLegal           = 3 * 365 * 24 * time.Hour
	DefaultRegister        = 730 * 24 * time.Hour
	DefaultFailedOpen      = 90 * 24 * time.Hour
)

// Defaults of the pipeline (internal/pipeline's Default* constants). They
// cannot be taken from there: the pipeline's own tests load
// configurations, so this package may not import it. The test
// TestDefaultsMatchOwners holds them equal.
const (
	defaultWorkers         = 10
	defaultMaxAttempts     = 10
	defaultBackoffBase     = time.Second
	defaultBackoffMax      = 10 * time.Minute
	defaultJobTimeout      = 10 * time.Minute
	defaultWarnBefore      = 7 * 24 * time.Hour
	defaultSweepInterval   = 10 * time.Minute
	defaultCallbackWindow  = 24 * time.Hour
	defaultCallbackTimeout = 10 * time.Second
	defaultMaxIdentities   = 1000
)

// Default returns the configuration used for every field the file leaves
// out.
func Default() *Config {
	regs := make(map[lethe.Regulation]time.Duration, len(lethe.DefaultDeadlines))
	for r, d := range lethe.DefaultDeadlines {
		regs[r] = d
	}
	return &Config{
		Listen:      DefaultListen,
		DB:          DefaultDB,
		Regulations: regs,
		Workers: Workers{
			Concurrency:     defaultWorkers,
			MaxAttempts:     defaultMaxAttempts,
			BackoffBase:     defaultBackoffBase,
			BackoffMax:      defaultBackoffMax,
			JobTimeout:      defaultJobTimeout,
			ShutdownTimeout: DefaultShutdownTimeout,
		},
		HTTP: HTTP{
			MaxBodyBytes:      httpapi.DefaultMaxBodyBytes,
			ReadHeaderTimeout: httpapi.ReadHeaderTimeout,
			ReadTimeout:       httpapi.ReadTimeout,
			WriteTimeout:      httpapi.WriteTimeout,
			IdleTimeout:       httpapi.IdleTimeout,
		},
		Deadlines: Deadlines{WarnBefore: defaultWarnBefore, SweepInterval: defaultSweepInterval},
		Resolve:   Resolve{MaxIdentities: defaultMaxIdentities},
		Review:    Review{SweepInterval: defaultHoldSweepInterval},
		RateLimits: RateLimits{
			Native:  limitOf(httpapi.DefaultRule),
			Connect: limitOf(connect.DefaultRule),
			S2S:     limitOf(s2s.DefaultRule),
			DRP:     defaultDRPLimit,
			OpenDSR: defaultOpenDSRLimit,
		},
		DRP:       DRP{ClockSkew: defaultDRPClockSkew},
		Retention: Retention{RequestDetails: DefaultRequestDetails, Legal: DefaultLegal, Register: DefaultRegister, FailedOpen: DefaultFailedOpen},
		Callbacks: Callbacks{Window: defaultCallbackWindow, Timeout: defaultCallbackTimeout, ForbidPrivateAddresses: true},
	}
}

func limitOf(r ratelimit.Rule) Limit {
	return Limit{Limit: r.Limit, Window: r.Window, Block: r.Block}
}

// Environment variables that override a field of the file. They let the
// address and the database change per deployment without editing it.
var envOverrides = []struct {
	env, path string
	field     func(*Config) *string
}{
	{"LETHE_LISTEN", "listen", func(c *Config) *string { return &c.Listen }},
	{"LETHE_DB", "db", func(c *Config) *string { return &c.DB }},
}

// Load reads the file at path, expands ${VAR} from env (os.LookupEnv in
// production; a map in tests), applies LETHE_LISTEN and LETHE_DB, and
// validates. On a problem with the content it returns Errors holding every
// problem found.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, env)
}

// Parse is Load for a file already read.
func Parse(data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		// yaml.v3 syntax errors name a line and a token kind, not values.
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse config: the file must hold one YAML document")
	}

	var errs errorList
	expandNode(&root, "", env, &errs)
	c := Default()
	c.lines = map[string]int{}
	if root.Kind != 0 { // 0: the file is empty or only comments
		d := decoder{errs: &errs, lines: c.lines}
		d.decode(&root, reflect.ValueOf(c).Elem(), "")
	}
	for _, o := range envOverrides {
		if v, ok := env(o.env); ok {
			*o.field(c) = v
			if c.overridden == nil {
				c.overridden = map[string]string{}
			}
			c.overridden[o.path] = o.env
		}
	}
	c.validate(&errs)
	if err := errs.err(); err != nil {
		// The decoded Config comes back too, so the caller can add its own
		// checks (the targets' options) to the same report; it must not
		// be used for anything else.
		return c, err
	}
	return c, nil
}

// Validate checks c as Load does; use it on a Config built in code.
func (c *Config) Validate() error {
	var errs errorList
	c.validate(&errs)
	return errs.err()
}

var namePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// minAdminToken keeps a guessable admin token out of production.
const minAdminToken = 16

func (c *Config) validate(errs *errorList) {
	decodeFailed := map[string]bool{}
	for _, e := range errs.errs {
		decodeFailed[e.Path] = true
	}
	bad := func(path, format string, args ...any) {
		if decodeFailed[path] {
			return // already reported; the value left behind means nothing
		}
		msg := fmt.Sprintf(format, args...)
		if env, ok := c.overridden[path]; ok {
			errs.add(path, 0, "%s (set by %s)", msg, env)
			return
		}
		errs.add(path, c.line(path), "%s", msg)
	}

	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "must be host:port, e.g. 127.0.0.1:8080 or :8080")
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("listen", "port must be a number between 0 and 65535")
	}

	switch {
	case c.DB == "":
		bad("db", "must not be empty: a SQLite file path or a postgres:// URL")
	case strings.Contains(c.DB, "://"):
		// url.Parse's error quotes the URL, password included; say only
		// what is wrong.
		u, err := url.Parse(c.DB)
		if err != nil {
			bad("db", "is not a valid URL")
		} else if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			bad("db", "unsupported URL scheme: want postgres:// or postgresql://, or a SQLite file path")
		}
	}

	if c.AdminToken != "" && len(c.AdminToken) < minAdminToken {
		bad("admin_token", "must be at least %d characters (or empty to disable the admin API)", minAdminToken)
	}

	if len(c.Regulations) == 0 {
		bad("regulations", "must list at least one regulation")
	}
	for _, r := range sortedKeys(c.Regulations) {
		p := joinKey("regulations", string(r))
		if !namePattern.MatchString(string(r)) {
			bad(p, "regulation name must match [a-z0-9_-]+")
		}
		if c.Regulations[r] <= 0 {
			bad(p, "must be a positive duration")
		}
	}

	w := c.Workers
	intRange(bad, "workers.concurrency", w.Concurrency, 1, 1000)
	intRange(bad, "workers.max_attempts", w.MaxAttempts, 1, 100)
	durRange(bad, "workers.backoff_base", w.BackoffBase, time.Millisecond, time.Hour)
	durRange(bad, "workers.backoff_max", w.BackoffMax, time.Millisecond, 24*time.Hour)
	if w.BackoffBase > 0 && w.BackoffMax > 0 && w.BackoffMax < w.BackoffBase {
		bad("workers.backoff_max", "must be at least workers.backoff_base")
	}
	durRange(bad, "workers.job_timeout", w.JobTimeout, time.Second, 24*time.Hour)
	durRange(bad, "workers.shutdown_timeout", w.ShutdownTimeout, time.Second, time.Hour)
	switch {
	case w.RescueAfter == 0: // JobTimeout + 1m
	case w.RescueAfter < time.Second || w.RescueAfter > 25*time.Hour:
		durRange(bad, "workers.rescue_after", w.RescueAfter, time.Second, 25*time.Hour)
	case w.RescueAfter <= w.JobTimeout:
		bad("workers.rescue_after", "must exceed workers.job_timeout")
	}

	if n := c.HTTP.MaxBodyBytes; n < 1024 || n > 16<<20 {
		bad("http.max_body_bytes", "must be between 1024 and 16777216")
	}
	durRange(bad, "http.read_header_timeout", c.HTTP.ReadHeaderTimeout, 100*time.Millisecond, 5*time.Minute)
	durRange(bad, "http.read_timeout", c.HTTP.ReadTimeout, 100*time.Millisecond, time.Hour)
	durRange(bad, "http.write_timeout", c.HTTP.WriteTimeout, 100*time.Millisecond, time.Hour)
	durRange(bad, "http.idle_timeout", c.HTTP.IdleTimeout, 100*time.Millisecond, time.Hour)
	c.validateDeadlines(bad)
	c.validateReview(bad)
	c.validateResolve(bad)

	validLimit(bad, "rate_limits.native", c.RateLimits.Native)
	validLimit(bad, "rate_limits.connect", c.RateLimits.Connect)
	validLimit(bad, "rate_limits.s2s", c.RateLimits.S2S)
	validLimit(bad, "rate_limits.drp", c.RateLimits.DRP)
	validLimit(bad, "rate_limits.opendsr", c.RateLimits.OpenDSR)
	for _, name := range sortedKeys(c.RateLimits.Clients) {
		p := joinKey("rate_limits.clients", name)
		if strings.TrimSpace(name) == "" {
			bad(p, "client name must not be empty")
		}
		o := c.RateLimits.Clients[name]
		for _, l := range []struct {
			name string
			l    *Limit
		}{{ProfileNative, o.Native}, {ProfileConnect, o.Connect}, {ProfileS2S, o.S2S}, {ProfileDRP, o.DRP}, {ProfileOpenDSR, o.OpenDSR}} {
			if l.l != nil {
				validLimit(bad, joinKey(p, l.name), *l.l)
			}
		}
	}

	if c.Retention.RequestDetails < 0 {
		bad("retention.request_details", "must not be negative")
	}
	if c.Retention.Legal < 0 {
		bad("retention.legal", "must not be negative")
	}
	if c.Retention.FailedOpen < 0 {
		bad("retention.failed_open", "must not be negative")
	}
	if c.Retention.Register < 0 {
		bad("retention.register", "must not be negative")
	} else if c.Retention.Register > c.Retention.Legal {
		bad("retention.register", "must not exceed retention.legal: every request in the register keeps its receipt")
	}
	c.validateCallbacks(bad)
	c.validateProtocols(bad)

	first := map[string]int{}
	for i, t := range c.Targets {
		p := joinIndex("targets", i)
		switch {
		case t.Name == "":
			bad(p+".name", "is required")
		case !namePattern.MatchString(t.Name):
			bad(p+".name", "must match [a-z0-9_-]+")
		default:
			// No name in the message: it may have come from ${VAR}.
			if j, ok := first[t.Name]; ok {
				bad(p+".name", "duplicate of targets[%d].name", j)
			} else {
				first[t.Name] = i
			}
		}
		if t.Kind == "" {
			bad(p+".kind", "is required")
		}
	}
}

// line returns the file line of path or, for a field the file left out,
// of the nearest enclosing field that it has.
func (c *Config) line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

type badFunc func(path, format string, args ...any)

func intRange(bad badFunc, path string, v, lo, hi int) {
	if v < lo || v > hi {
		bad(path, "must be between %d and %d", lo, hi)
	}
}

func durRange(bad badFunc, path string, v, lo, hi time.Duration) {
	if v < lo || v > hi {
		bad(path, "must be between %s and %s", lethe.ShortDuration(lo), lethe.ShortDuration(hi))
	}
}

func validLimit(bad badFunc, path string, l Limit) {
	if l.Limit < 1 {
		bad(path+".limit", "must be at least 1")
	}
	if l.Window <= 0 {
		bad(path+".window", "must be a positive duration")
	}
	if l.Block <= 0 {
		bad(path+".block", "must be a positive duration")
	}
}

// sortedKeys makes validation errors come out in a stable order.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
