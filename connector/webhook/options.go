package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/netguard"
)

// Options configure one webhook target; see the package documentation for
// the YAML form.
type Options struct {
	// URL is the service's erase endpoint (POST). Required; https, or
	// http only to a loopback address or a host in AllowHosts, since
	// identities travel in the calls.
	URL string `yaml:"url"`
	// PlanURL, optional, answers what an erase would delete (POST, same
	// body). Without it Plan reports one "forward" line with unknown
	// counts.
	PlanURL string `yaml:"plan_url"`
	// VerifyURL, optional, answers what is left (POST, same body). Without
	// it Verify trusts the service's "done".
	VerifyURL string `yaml:"verify_url"`
	// Secret signs every call and authenticates call-backs. Required, at
	// least 16 bytes; give it as ${VAR}.
	Secret string `yaml:"secret"`
	// Identities lists the identity types this service may receive; the
	// subject's other identities are never sent. Required.
	Identities []lethe.IdentityType `yaml:"identities"`
	// CallbackBaseURL is lethe's own base URL as the service reaches it
	// (https://lethe.internal:8080). When set, every erase call carries a
	// callback_url the service may POST its confirmation to.
	CallbackBaseURL string `yaml:"callback_base_url"`
	// Timeout bounds each HTTP call. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrency bounds this target's calls in flight, whatever the
	// pipeline's worker count. Default 4.
	MaxConcurrency int `yaml:"max_concurrency"`
	// PollInterval is the wait after the first pending answer; it doubles
	// with every further one up to PollMax. Defaults 30s and 30m.
	PollInterval time.Duration `yaml:"poll_interval"`
	PollMax      time.Duration `yaml:"poll_max"`
	// ConfirmWithin is how long the service has to confirm an erasure,
	// from the task's first attempt; past it the task fails. Default: the
	// pipeline's (24h).
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
	defaultPollInterval   = 30 * time.Second
	defaultPollMax        = 30 * time.Minute
	minSecretLen          = 16
)

func (o *Options) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	g, err := netguard.New(o.AllowHosts)
	if err != nil {
		errs = append(errs, err)
		g = netguard.Strict()
	}
	o.guard = g
	for _, u := range []struct{ name, v string }{
		{"url", o.URL}, {"plan_url", o.PlanURL}, {"verify_url", o.VerifyURL}, {"callback_base_url", o.CallbackBaseURL},
	} {
		if u.v == "" {
			if u.name == "url" {
				bad("url is required")
			}
			continue
		}
		// No URL in the message: it may hold a credential.
		p, err := url.Parse(u.v)
		switch {
		case err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
			bad("%s must be an absolute http or https URL", u.name)
		case p.Scheme == "http" && u.name != "callback_base_url" && !g.PlainHTTPAllowed(p.Hostname()):
			// callback_base_url is lethe's own address, called by the
			// service, never by lethe.
			bad("%s must use https (http only to a loopback address or a host in allow_hosts): identities travel in the calls", u.name)
		}
	}
	if len(o.Secret) < minSecretLen {
		bad("secret must be at least %d bytes", minSecretLen)
	}
	if len(o.Identities) == 0 {
		bad("identities must list the identity types the service may receive")
	}
	for _, t := range o.Identities {
		if !t.Valid() {
			bad("identities: %q is not an identity type", t)
		}
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = defaultMaxConcurrency
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
	if o.PollInterval < 0 || o.PollMax < o.PollInterval {
		bad("poll_interval must be positive and at most poll_max")
	}
	if o.ConfirmWithin < 0 {
		bad("confirm_within must not be negative")
	}
	return errors.Join(errs...)
}
