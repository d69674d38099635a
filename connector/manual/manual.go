// Package manual is the connector of a system lethe cannot reach: a paper
// archive, a vendor reached by email, a spreadsheet on someone's laptop.
// Its task waits for a named owner to attest what was done (counts per
// object and free text) through the operator API or CLI; the receipt marks
// those lines "attested by <operator>" rather than verified. Like any
// asynchronous target, the task fails when nobody attests within
// confirm_within.
//
// In the data map:
//
//   - name: paper-archive
//     kind: manual
//     owner: records-office       # who is asked to act; shown to operators
//     objects: [contracts, letters] # what the owner reports counts for
//     confirm_within: 336h        # default: the pipeline's (24h)
//     remind_every: 24h           # how often the owner is reminded
//     remind_url: https://hooks.example.com/lethe-reminders # optional
//
// While the task waits, a reminder (request id, target, owner, objects,
// due date, how to attest; never an identity) is posted to remind_url when
// the task starts waiting and every remind_every after that, through the
// pipeline's callback delivery: signed with the admin callback secret,
// retried, and held to the same host allow-list and address guard as
// status callbacks. Without remind_url nothing is sent.
package manual

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// Kind is the data map's kind for manual targets.
const Kind = "manual"

// Info registers the connector.
func Info() connector.Info {
	return connector.Info{Kind: Kind, New: func(_ context.Context, t connector.Target) (connector.Connector, error) {
		var o Options
		if err := t.DecodeOptions(&o); err != nil {
			return nil, err
		}
		return New(o)
	}}
}

// Options configure one manual target.
type Options struct {
	// Owner names who must act (a team, a role); required.
	Owner string `yaml:"owner"`
	// Objects are what the owner reports counts for; required.
	Objects []string `yaml:"objects"`
	// ConfirmWithin is how long the owner has to attest, from the task's
	// first attempt. Default: the pipeline's.
	ConfirmWithin time.Duration `yaml:"confirm_within"`
	// RemindEvery is how often the waiting task is looked at again (its
	// deadline is checked then) and its owner reminded. Default 24h.
	RemindEvery time.Duration `yaml:"remind_every"`
	// RemindURL, when set, is where reminders are posted (http or https;
	// no credentials in it). Optional.
	RemindURL string `yaml:"remind_url"`
}

// DefaultRemindEvery is Options.RemindEvery's default.
const DefaultRemindEvery = 24 * time.Hour

// objectName keeps object names names, not data: they land in receipts.
var objectName = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,64}$`)

// Connector is one manual target.
type Connector struct {
	o Options
}

var (
	_ connector.Connector = (*Connector)(nil)
	_ connector.Deadliner = (*Connector)(nil)
)

// New returns a manual connector.
func New(o Options) (*Connector, error) {
	var errs []error
	if o.Owner == "" || len(o.Owner) > 64 {
		errs = append(errs, errors.New("owner is required (at most 64 bytes)"))
	}
	if len(o.Objects) == 0 {
		errs = append(errs, errors.New("objects must list at least one object"))
	}
	seen := map[string]bool{}
	for i, obj := range o.Objects {
		if !objectName.MatchString(obj) {
			errs = append(errs, fmt.Errorf("objects[%d] must match %s", i, objectName))
		}
		if seen[obj] {
			errs = append(errs, fmt.Errorf("objects[%d] is listed twice", i))
		}
		seen[obj] = true
	}
	if o.ConfirmWithin < 0 || o.RemindEvery < 0 {
		errs = append(errs, errors.New("confirm_within and remind_every must not be negative"))
	}
	if o.RemindEvery == 0 {
		o.RemindEvery = DefaultRemindEvery
	}
	if o.RemindURL != "" {
		u, err := url.Parse(o.RemindURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
			errs = append(errs, errors.New("remind_url must be an http or https URL with a host and no credentials"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Connector{o: o}, nil
}

// Manual marks the connector as one whose erasures a person attests.
func (c *Connector) Manual() string { return c.o.Owner }

// Objects lists the objects an attestation may report.
func (c *Connector) Objects() []string { return append([]string(nil), c.o.Objects...) }

// RemindEvery is how often the owner of a waiting task is reminded.
func (c *Connector) RemindEvery() time.Duration { return c.o.RemindEvery }

// RemindURL is where reminders go; "" sends none.
func (c *Connector) RemindURL() string { return c.o.RemindURL }

// ConfirmWithin implements connector.Deadliner.
func (c *Connector) ConfirmWithin() time.Duration { return c.o.ConfirmWithin }

// Resolve finds nothing: a system lethe cannot read links no identity.
func (c *Connector) Resolve(context.Context, connector.Subject) ([]lethe.Identity, error) {
	return nil, nil
}

// Plan lists the objects the owner will report on, counts unknown until
// they attest.
func (c *Connector) Plan(context.Context, connector.Subject) (lethe.Report, error) {
	r := lethe.Report{Items: make([]lethe.ReportItem, len(c.o.Objects))}
	for i, obj := range c.o.Objects {
		r.Items[i] = lethe.ReportItem{Object: obj, Action: lethe.ActionDelete}
	}
	return r, nil
}

// Erase waits for the owner: lethe cannot act on the system itself, so
// every call answers pending until an attestation ends the task.
func (c *Connector) Erase(context.Context, connector.Subject) (lethe.Report, error) {
	return lethe.Report{}, &connector.PendingError{After: c.o.RemindEvery, Reason: "waiting for " + c.o.Owner + " to attest the erasure"}
}

// Verify cannot look: the attestation is the owner's word, and the
// receipt says so.
func (c *Connector) Verify(context.Context, connector.Subject) error { return nil }
