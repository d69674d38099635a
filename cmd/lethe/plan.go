package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/httpapi"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/pipeline"
)

// newPlanCmd previews a deletion request against the data map alone: it
// needs the targets, not lethe's database, so it can be run before lethe
// is deployed, to check a data map.
func newPlanCmd(g *globals) *cobra.Command {
	var (
		idFlags []string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "plan --config FILE --identity TYPE:VALUE [--identity TYPE:VALUE ...]",
		Short: "Show what a deletion request would erase, per target and table, changing nothing",
		Long: `Resolves the identities across every target of the data map exactly as a
request would (an email finds a user id, the user id finds orders...), then
asks each target what it would delete, pseudonymise or retain. Nothing is
changed and nothing is stored. Identity values are never printed.

TYPE is email, phone, user_id or x-<name>; phones are international
(+4915112345678).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.configPath == "" {
				return errors.New("plan needs --config (or LETHE_CONFIG): the data map there says what to plan")
			}
			ids, err := parseIdentityFlags(idFlags)
			if err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			targets, closeTargets, err := openTargets(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer closeTargets()
			if err := checkDataMap(cmd.Context(), targets, log); err != nil {
				return err
			}
			planner, err := pipeline.NewPlanner(pipeline.Config{MaxIdentities: cfg.Resolve.MaxIdentities}, targets, log)
			if err != nil {
				return err
			}
			plan, err := planner.Plan(cmd.Context(), ids)
			if err != nil {
				return err
			}
			if asJSON {
				err = printJSON(cmd.OutOrStdout(), newPlanView(plan))
			} else {
				err = printPlan(cmd.OutOrStdout(), plan)
			}
			if err != nil {
				return err
			}
			if failed := plan.Failed(); len(failed) > 0 {
				return fmt.Errorf("%d of %d targets could not be planned", len(failed), len(plan.Targets))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&idFlags, "identity", nil, "an identity of the subject, TYPE:VALUE (repeatable; at least one)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// parseIdentityFlags splits TYPE:VALUE at the first colon and normalises
// as intake does. Errors name the flag's position, never its value.
func parseIdentityFlags(flags []string) ([]lethe.Identity, error) {
	if len(flags) == 0 {
		return nil, errors.New("give at least one --identity TYPE:VALUE")
	}
	if len(flags) > intake.MaxIdentities {
		return nil, fmt.Errorf("at most %d --identity flags", intake.MaxIdentities)
	}
	ids := make([]lethe.Identity, len(flags))
	for i, f := range flags {
		typ, value, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("--identity #%d: want TYPE:VALUE, e.g. email:ada@example.com", i+1)
		}
		ids[i] = lethe.Identity{Type: lethe.IdentityType(strings.TrimSpace(typ)), Value: value}
	}
	ids, err := intake.NormalizeIdentities(ids)
	if err != nil {
		// The message says "identities[i]: ..." without the value.
		return nil, fmt.Errorf("--identity: %s", lethe.ErrorMessage(err))
	}
	return ids, nil
}

// planView is the JSON form: the API's dry run answer plus what only the
// operator's command shows (resolve's rounds, per-target errors).
type planView struct {
	DryRun           bool             `json:"dry_run"`
	GivenIdentities  int              `json:"given_identities"`
	LinkedIdentities int              `json:"linked_identities"`
	ResolveRounds    int              `json:"resolve_rounds"`
	ResolveCapped    bool             `json:"resolve_capped"`
	Reach            *lethe.Reach     `json:"reach,omitempty"`
	WouldStop        lethe.Outcome    `json:"would_stop,omitempty"`
	Targets          []targetPlanView `json:"targets"`
}

type targetPlanView struct {
	Target string         `json:"target"`
	Items  []planItemView `json:"items"`
	Error  string         `json:"error,omitempty"`
}

// planItemView is lethe.ReportItem with until as a date string that is
// absent when unset, as the API writes it.
type planItemView struct {
	Object string       `json:"object"`
	Action lethe.Action `json:"action"`
	Rows   int64        `json:"rows"`
	Reason string       `json:"reason,omitempty"`
	Until  string       `json:"until,omitempty"`
}

func newPlanView(p *pipeline.Plan) planView {
	v := planView{
		DryRun: true, GivenIdentities: p.Given, LinkedIdentities: p.Linked,
		ResolveRounds: p.Rounds, ResolveCapped: p.Capped, Reach: p.Reach, WouldStop: p.Stop,
		Targets: make([]targetPlanView, len(p.Targets)),
	}
	for i, t := range p.Targets {
		tv := targetPlanView{Target: t.Target, Items: make([]planItemView, len(t.Report.Items))}
		for j, it := range t.Report.Items {
			tv.Items[j] = planItemView{Object: it.Object, Action: it.Action, Rows: it.Rows, Reason: it.Reason}
			if !it.Until.IsZero() {
				tv.Items[j].Until = it.Until.UTC().Format(time.RFC3339)
			}
		}
		if t.Err != nil {
			tv.Error = t.Err.Error() // already scrubbed of identity values
		}
		v.Targets[i] = tv
	}
	return v
}

// printPlan writes the plan as a table.
func printPlan(w io.Writer, p *pipeline.Plan) error {
	note := ""
	if p.Capped {
		note = " (stopped at the round limit: the data map may link in cycles)"
	}
	fmt.Fprintf(w, "Plan for %s given and %s found by resolve (%s)%s.\nNothing was changed.\n\n",
		plural(p.Given, "identity", "identities"), plural(p.Linked, "linked one", "linked ones"), plural(p.Rounds, "round", "rounds"), note)
	if err := printReach(w, p.Reach); err != nil {
		return err
	}
	if p.Stop != "" {
		_, err := fmt.Fprintf(w, "A request for this subject would stop as %s before erasing anything:\n"+
			"the identities reach more than one account, so erasing would erase somebody else too.\n", p.Stop)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tOBJECT\tACTION\tROWS\tNOTE")
	for _, t := range p.Targets {
		if t.Err != nil {
			fmt.Fprintf(tw, "%s\t-\tfailed\t-\t%s\n", t.Target, t.Err)
			continue
		}
		if len(t.Report.Items) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t0\tnothing held\n", t.Target)
		}
		for _, it := range t.Report.Items {
			n := it.Reason
			if !it.Until.IsZero() {
				n += " (until " + it.Until.UTC().Format("2006-01-02") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", t.Target, it.Object, it.Action, it.Rows, n)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nWould delete %d rows, pseudonymise %d and retain %d.\n",
		p.Rows(lethe.ActionDelete), p.Rows(lethe.ActionPseudonymize), p.Rows(lethe.ActionRetain))
	return err
}

// printReach lists the accounts the identities reached per target and
// root object, and the values resolve did not follow.
func printReach(w io.Writer, r *lethe.Reach) error {
	if r == nil {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Accounts) > 0 {
		fmt.Fprintln(tw, "ROOT OBJECT\tACCOUNTS REACHED")
		for _, k := range slices.Sorted(maps.Keys(r.Accounts)) {
			fmt.Fprintf(tw, "%s\t%d\n", k, r.Accounts[k])
		}
	}
	for _, u := range r.Unfollowed {
		fmt.Fprintf(tw, "%s\tnot followed: its values match more accounts than the follow limit\n", u)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// apiPlanner gives the native API's dry run the pipeline's Plan, mapping
// its failures to the API's codes. The details (already scrubbed of
// identity values) travel wrapped, so the API logs them and shows only
// the safe message.
func apiPlanner(p *pipeline.Pipeline) httpapi.Planner {
	return func(ctx context.Context, ids []lethe.Identity) (*httpapi.PlanResult, error) {
		plan, err := p.Plan(ctx, ids)
		var re *pipeline.ResolveError
		var tm *pipeline.TooManyIdentitiesError
		switch {
		case errors.As(err, &re):
			return nil, fmt.Errorf("%w: %v", lethe.Errorf(lethe.EUNAVAILABLE,
				"target %q could not resolve the identities; the reason is in the server log", re.Target), re.Err)
		case errors.As(err, &tm):
			return nil, lethe.Errorf(lethe.ECONFLICT, "%s; a request for this subject would fail", tm)
		case err != nil:
			return nil, err
		}
		if failed := plan.Failed(); len(failed) > 0 {
			errs := make([]error, len(failed))
			for i, f := range failed {
				errs[i] = fmt.Errorf("target %q: %w", f.Target, f.Err)
			}
			return nil, fmt.Errorf("%w: %w", lethe.Errorf(lethe.EUNAVAILABLE,
				"target %q could not be planned; the reason is in the server log", failed[0].Target), errors.Join(errs...))
		}
		out := &httpapi.PlanResult{
			LinkedIdentities: plan.Linked, Reach: plan.Reach, Stop: plan.Stop,
			Targets: make([]httpapi.TargetPlan, len(plan.Targets)),
		}
		for i, t := range plan.Targets {
			out.Targets[i] = httpapi.TargetPlan{Target: t.Target, Report: t.Report}
		}
		return out, nil
	}
}
