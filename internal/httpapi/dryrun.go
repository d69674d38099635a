package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/intake"
)

// Planner previews what erasing a subject would do on every target,
// changing nothing. ids are normalised and de-duplicated, as intake stores
// them. A *lethe.Error is answered with its code and message (a target
// that cannot be reached is EUNAVAILABLE); any other error is internal.
type Planner func(ctx context.Context, ids []lethe.Identity) (*PlanResult, error)

// PlanResult is a dry run's answer.
type PlanResult struct {
	// LinkedIdentities counts the identities resolve found beyond the
	// given ones (their values are never shown).
	LinkedIdentities int
	// Reach is how far the identities reached: accounts per target and
	// root object, values not followed. Nil when no target reports it.
	Reach *lethe.Reach
	// Stop is why a request for this subject would stop before erasing
	// anything (lethe.OutcomeAmbiguousSubject); "" when it would erase.
	Stop lethe.Outcome
	// Targets holds one entry per target, in data map order; empty when
	// Stop is set.
	Targets []TargetPlan
}

// TargetPlan is one target's part of a PlanResult.
type TargetPlan struct {
	Target string
	Report lethe.Report
}

type dryRunView struct {
	DryRun           bool             `json:"dry_run"`
	LinkedIdentities int              `json:"linked_identities"`
	Reach            *lethe.Reach     `json:"reach,omitempty"`
	WouldStop        lethe.Outcome    `json:"would_stop,omitempty"`
	Targets          []targetPlanView `json:"targets"`
}

type targetPlanView struct {
	Target string           `json:"target"`
	Items  []reportItemView `json:"items"`
}

// dryRunRequested reads the dry_run query parameter of a create. Only the
// admin may plan: a plan answers, for any identity, whether and how much
// the company holds about that person, at no cost and with no request on
// record, which a partner must not be able to ask. A submission a client
// makes for real shows the same counts only after the erasure it caused.
func (s *Server) dryRunRequested(r *http.Request, p auth.Principal) (bool, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil && strings.Contains(strings.ToLower(r.URL.RawQuery), "dry") {
		// A dry run asked for in a mangled query must not become a real
		// deletion; other malformed queries are ignored as before.
		return false, lethe.Errorf(lethe.EINVALID, "query string is malformed")
	}
	for k := range q {
		norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(k))
		if k != "dry_run" && strings.Contains(norm, "dryrun") {
			// Unknown parameters are otherwise ignored; a misspelt dry run
			// silently erasing somebody would be the worst way to learn it.
			return false, lethe.Errorf(lethe.EINVALID, "unknown query parameter; a dry run is requested with dry_run=true")
		}
	}
	vs := q["dry_run"]
	switch {
	case len(vs) == 0:
		return false, nil
	case len(vs) > 1:
		return false, lethe.Errorf(lethe.EINVALID, "query parameter dry_run may be given once")
	}
	dry, err := strconv.ParseBool(vs[0])
	if err != nil {
		return false, lethe.Errorf(lethe.EINVALID, "dry_run must be true or false")
	}
	if !dry {
		return false, nil
	}
	if !p.Admin {
		return false, lethe.Errorf(lethe.EFORBIDDEN, "dry_run is reserved for the admin token")
	}
	if s.plan == nil {
		return false, lethe.Errorf(lethe.EINVALID, "dry_run is not available on this server")
	}
	return true, nil
}

// handleDryRun answers what sub would erase: 200 with one plan per
// target. The body is validated exactly as a real submission's (intake's
// own checks, so the errors are the same), and nothing is stored: no
// request, no audit event, no idempotency key.
func (s *Server) handleDryRun(w http.ResponseWriter, r *http.Request, sub intake.Submission) {
	ids, err := s.intake.Check(sub)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.plan(r.Context(), ids)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := dryRunView{
		DryRun: true, LinkedIdentities: res.LinkedIdentities, Reach: res.Reach, WouldStop: res.Stop,
		Targets: make([]targetPlanView, len(res.Targets)),
	}
	for i, t := range res.Targets {
		tv := targetPlanView{Target: t.Target, Items: make([]reportItemView, len(t.Report.Items))}
		for j, it := range t.Report.Items {
			tv.Items[j] = reportItemView{Object: it.Object, Action: it.Action, Rows: it.Rows, Reason: it.Reason, Until: formatTime(it.Until)}
		}
		v.Targets[i] = tv
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "dry run planned",
		slog.String("request_id", request.ID(r.Context())),
		slog.Int("targets", len(v.Targets)),
		slog.Int("linked_identities", res.LinkedIdentities))
	s.writeJSON(w, r, http.StatusOK, v)
}
