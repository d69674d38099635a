package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// resolver is the part of the pipeline that walks the data map from the
// given identities to every linked one (resolveIdentities).
// Its fields carry the same names as the Pipeline's so that the resolve
// step and Plan run literally the same fixed-point code: a plan that
// resolved differently from the request it previews would be a lie.
type resolver struct {
	targets []Target
	cfg     Config
	log     *slog.Logger
	// followAmbiguous keeps resolving past an ambiguous subject: an
	// operator approved that its accounts are one person's.
	followAmbiguous bool
}

func (p *Pipeline) resolver() *resolver {
	return &resolver{targets: p.targets, cfg: p.cfg, log: p.log}
}

// Planner previews requests: it resolves identities and asks every target
// what it would erase, changing nothing. It needs no store and no job
// queue, so `lethe plan` runs it against a data map alone.
type Planner struct {
	r resolver
}

// NewPlanner returns a Planner over targets. Only cfg's MaxResolveRounds
// and MaxIdentities matter (zero takes the defaults, as in New); pass the
// same Config as the pipeline so a plan resolves as a request would. log
// may be nil.
func NewPlanner(cfg Config, targets []Target, log *slog.Logger) (*Planner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if t.Name == "" || t.Conn == nil {
			return nil, errors.New("pipeline: every target needs a Name and a Conn")
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("pipeline: target %q listed twice", t.Name)
		}
		seen[t.Name] = true
	}
	return &Planner{r: resolver{targets: append([]Target(nil), targets...), cfg: cfg, log: log}}, nil
}

// Plan is what erasing a subject would do: how far resolve reached, and
// per target the connector's report. It holds counts and data map names,
// never identity values.
type Plan struct {
	// Given is how many distinct identities were given, after
	// normalisation; Linked how many more resolve found.
	Given, Linked int
	// Rounds is how many resolve rounds ran; Capped says the round limit
	// stopped resolve before a fixed point (the request would be erased
	// with what was found, and its audit event says so).
	Rounds int
	Capped bool
	// Reach is how far the identities reached (accounts per target and
	// root object, values not followed); nil when no target reports it.
	Reach *lethe.Reach
	// Stop is why a request for this subject would stop before erasing
	// anything (lethe.OutcomeAmbiguousSubject), "" when it would erase.
	// A stopping plan asks no target what it would erase: nothing would be.
	Stop lethe.Outcome
	// Targets holds one entry per target, in data map order; empty when
	// Stop is set.
	Targets []TargetPlan
}

// TargetPlan is one target's part of a Plan.
type TargetPlan struct {
	Target string
	Report lethe.Report
	// Err is set when the target could not be planned; its message has
	// every identity value of the subject scrubbed out.
	Err error
}

// Rows sums the rows of action over every target that was planned.
func (p *Plan) Rows(action lethe.Action) int64 {
	var n int64
	for _, t := range p.Targets {
		for _, it := range t.Report.Items {
			if it.Action == action {
				n += it.Rows
			}
		}
	}
	return n
}

// Failed returns the targets whose plan failed.
func (p *Plan) Failed() []TargetPlan {
	var out []TargetPlan
	for _, t := range p.Targets {
		if t.Err != nil {
			out = append(out, t)
		}
	}
	return out
}

// ResolveError is returned by Plan when a target's Resolve failed: without
// every linked identity the per-target counts would understate what a
// request erases, so no plan is given. Err's message is scrubbed of
// identity values.
type ResolveError struct {
	Target string
	Err    error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("resolve on target %q: %v", e.Target, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// TooManyIdentitiesError is returned by Plan when resolve reached more
// identities than Config.MaxIdentities: a request for this subject would
// fail, so there is nothing to plan.
type TooManyIdentitiesError struct {
	Reached, Limit int
}

func (e *TooManyIdentitiesError) Error() string {
	return fmt.Sprintf("resolve reached %d identities, more than the limit of %d: the data map probably links unrelated subjects", e.Reached, e.Limit)
}

// Plan resolves ids (already normalised, as intake stores them) across
// every target, exactly as the resolve step does for a request, then asks
// each target in parallel what Erase would do with the whole identity
// set. It changes nothing anywhere: connectors' Resolve and Plan are
// read-only by contract, and nothing is stored.
func (pl *Planner) Plan(ctx context.Context, ids []lethe.Identity) (*Plan, error) {
	r := &pl.r
	// No request exists, so no request id: connectors that quote one to
	// their systems get "" and must not act on it.
	res := r.resolveIdentities(ctx, "", ids)
	if res.err != nil {
		return nil, &ResolveError{Target: res.target, Err: errors.New(redact(res.err, res.identities))}
	}
	plan := &Plan{
		Given:  len(ids),
		Linked: len(res.identities) - len(ids),
		Rounds: res.rounds,
		Capped: res.capped,
		Reach:  res.reach,
	}
	if res.reach.Ambiguous() {
		plan.Stop = lethe.OutcomeAmbiguousSubject
		return plan, nil
	}
	if len(res.identities) > r.cfg.MaxIdentities {
		return nil, &TooManyIdentitiesError{Reached: len(res.identities), Limit: r.cfg.MaxIdentities}
	}
	plan.Targets = make([]TargetPlan, len(r.targets))
	subject := connector.Subject{Identities: res.identities}
	parallel(len(r.targets), func(i int) {
		t := r.targets[i]
		rep, err := call(r.log, t.Name, func() (lethe.Report, error) { return t.Conn.Plan(ctx, subject) })
		plan.Targets[i] = TargetPlan{Target: t.Name, Report: rep}
		if err != nil {
			plan.Targets[i] = TargetPlan{Target: t.Name, Err: errors.New(redact(err, res.identities))}
		}
	})
	return plan, nil
}

// Plan is Planner.Plan over the pipeline's own targets and limits, for the
// API's dry run.
func (p *Pipeline) Plan(ctx context.Context, ids []lethe.Identity) (*Plan, error) {
	return (&Planner{r: *p.resolver()}).Plan(ctx, ids)
}
