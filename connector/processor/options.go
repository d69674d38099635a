package processor

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/netguard"
)

// Options are what every processor target has; each API's options embed
// them inline (see the package documentation for the YAML form).
type Options struct {
	// BaseURL is where the processor's API lives, without the endpoint
	// paths. Required; https, or http only to a loopback address or a
	// host in AllowHosts (a local proxy or a test), since identities and
	// credentials travel in the calls.
	BaseURL string `yaml:"base_url"`
	// Identities lists the identity types this processor may receive;
	// the subject's other identities are never sent. Each API states its
	// default (or requires the list).
	Identities []lethe.IdentityType `yaml:"identities"`
	// Timeout bounds each HTTP call. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// RateLimit caps the calls this process makes to the processor, all
	// endpoints together: "50/10m" is at most 50 calls in any 10 minutes.
	// Default per API ("" in YAML keeps it; "0" turns it off).
	RateLimit Rate `yaml:"rate_limit"`
	// MaxConcurrency bounds this target's calls in flight, whatever the
	// pipeline's worker count. Default 4.
	MaxConcurrency int `yaml:"max_concurrency"`
	// BatchSize caps the identities one Erase call submits; the rest go
	// out in the next calls, so one subject with many identities cannot
	// hold a worker (or the whole rate budget) for long. Default 20.
	BatchSize int `yaml:"batch_size"`
	// PollInterval is the wait before the first status check after
	// submitting; it doubles with every further check up to PollMax.
	// Defaults 30s and 30m. Unused by APIs without a status endpoint.
	PollInterval time.Duration `yaml:"poll_interval"`
	PollMax      time.Duration `yaml:"poll_max"`
	// ConfirmWithin is how long the processor has to complete the
	// deletion, from the task's first attempt; past it the task fails.
	// Default: the pipeline's (24h).
	ConfirmWithin time.Duration `yaml:"confirm_within"`
	// AllowHosts are the hosts this target may reach although their
	// addresses are not public (loopback, private networks, ...), and
	// over plain http: exact names, "*." and a domain, IP addresses or
	// CIDR networks. Every other address is refused when dialed. Default
	// none: public addresses only.
	AllowHosts []string `yaml:"allow_hosts"`

	guard *netguard.Guard // built by check from AllowHosts
}

const (
	defaultTimeout        = 10 * time.Second
	defaultMaxConcurrency = 4
	defaultBatchSize      = 20
	defaultPollInterval   = 30 * time.Second
	defaultPollMax        = 30 * time.Minute
)

// check fills defaults and reports every problem; def is the API's
// defaults for RateLimit and Identities.
func (o *Options) check(def Defaults) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	g, err := netguard.New(o.AllowHosts)
	if err != nil {
		errs = append(errs, err)
		g = netguard.Strict()
	}
	o.guard = g
	if o.BaseURL == "" {
		bad("base_url is required")
	} else if err := checkBaseURL(o.BaseURL, g); err != nil {
		bad("%v", err)
	}
	if len(o.Identities) == 0 {
		o.Identities = def.Identities
	}
	if len(o.Identities) == 0 {
		bad("identities must list the identity types the processor may receive")
	}
	for _, t := range o.Identities {
		if !t.Valid() {
			bad("identities: %q is not an identity type", t)
		}
	}
	if !o.RateLimit.set {
		o.RateLimit = def.RateLimit
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = defaultMaxConcurrency
	}
	if o.BatchSize == 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.PollInterval == 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.PollMax == 0 {
		o.PollMax = max(defaultPollMax, o.PollInterval)
	}
	if o.Timeout < 0 || o.Timeout > 10*time.Minute {
		bad("timeout must be positive and at most 10m")
	}
	if o.MaxConcurrency < 1 || o.MaxConcurrency > 1000 {
		bad("max_concurrency must be 1..1000")
	}
	if o.BatchSize < 1 || o.BatchSize > 1000 {
		bad("batch_size must be 1..1000")
	}
	if o.PollInterval < 0 || o.PollMax < o.PollInterval {
		bad("poll_interval must be positive and at most poll_max")
	}
	if o.ConfirmWithin < 0 {
		bad("confirm_within must not be negative")
	}
	return errors.Join(errs...)
}

// checkBaseURL never quotes the URL: it may carry a credential.
func checkBaseURL(raw string, g *netguard.Guard) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("base_url must be an absolute URL without credentials, query or fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if g.PlainHTTPAllowed(u.Hostname()) {
			return nil
		}
		return errors.New("base_url must use https (http only to a loopback address or a host in allow_hosts): identities and credentials travel in the calls")
	default:
		return errors.New("base_url must be an https URL")
	}
}

// Rate is a call budget: at most N calls in any window of Per. The zero
// Rate is unlimited.
type Rate struct {
	N   int
	Per time.Duration
	set bool // given in the file (even as "0"), so the API's default stays out
}

// PerWindow returns the Rate of n calls per window.
func PerWindow(n int, per time.Duration) Rate { return Rate{N: n, Per: per, set: true} }

// Unlimited reports whether r puts no cap on calls.
func (r Rate) Unlimited() bool { return r.N == 0 }

func (r Rate) String() string {
	if r.Unlimited() {
		return "unlimited"
	}
	return strconv.Itoa(r.N) + "/" + lethe.ShortDuration(r.Per)
}

// UnmarshalText parses "50/10m" (N calls per duration) or "0" (no limit).
func (r *Rate) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*r = Rate{set: true}
		return nil
	}
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || count < 1 {
		return errors.New(`rate_limit must look like "50/10m" (calls per duration) or "0"`)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 || d > 24*time.Hour {
		return errors.New(`rate_limit must look like "50/10m", with a duration up to 24h`)
	}
	*r = Rate{N: count, Per: d, set: true}
	return nil
}
