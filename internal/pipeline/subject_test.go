package pipeline

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// accountTarget is a memTarget that knows which account each identity
// belongs to (its "users" root object), so it reports how many accounts a
// subject reaches, as connectors with a root do.
type accountTarget struct {
	*memTarget
	accounts   map[lethe.Identity][]string // identity -> account ids it matches
	unfollowed []string
}

var _ connector.SubjectResolver = (*accountTarget)(nil)

func (a *accountTarget) ResolveSubject(ctx context.Context, s connector.Subject) (connector.Resolution, error) {
	ids, err := a.Resolve(ctx, s)
	if err != nil {
		return connector.Resolution{}, err
	}
	reached := map[string]bool{}
	for _, id := range append(append([]lethe.Identity(nil), s.Identities...), ids...) {
		for _, acc := range a.accounts[id] {
			reached[acc] = true
		}
	}
	res := connector.Resolution{Identities: ids, Unfollowed: a.unfollowed}
	if len(reached) > 0 {
		res.RootRecords = map[string]int{"users": len(reached)}
	}
	return res, nil
}

var sharedPhone = lethe.Identity{Type: lethe.IdentityPhone, Value: "+14155550123"}

// TestOutcomeSaysWhatWasFound: a completed request that matched nothing
// anywhere is no_match; one that erased rows is erased; values a target
// did not follow are on record as running's details and the reach.
func TestOutcomeSaysWhatWasFound(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		users := &accountTarget{
			memTarget:  newMemTarget(),
			accounts:   map[lethe.Identity][]string{email: {"1"}},
			unfollowed: []string{"users.phone"},
		}
		users.put(email, 3)
		p := start(t, st, testConfig(), Target{"users", users}, Target{"logs", newMemTarget()})

		known := waitDone(t, st, submit(t, st, p, email), lethe.StatusCompleted)
		if known.Outcome != lethe.OutcomeErased {
			t.Errorf("known subject: outcome = %q, want erased", known.Outcome)
		}
		want := &lethe.Reach{Accounts: map[string]int{"users/users": 1}, Unfollowed: []string{"users/users.phone"}}
		if diff := cmp.Diff(want, known.Reach); diff != "" {
			t.Errorf("reach (-want +got):\n%s", diff)
		}
		events, err := st.ListAudit(context.Background(), known.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := events[0].Details; events[0].Type != lethe.EventRequestRunning || d["unfollowed"] != "users/users.phone" || d["accounts"] != "users/users=1" {
			t.Errorf("first event = %s %v, want request.running naming accounts and unfollowed", events[0].Type, d)
		}
		var completed lethe.AuditEvent
		for _, e := range events {
			if e.Type == lethe.EventRequestCompleted {
				completed = e
			}
		}
		if completed.Details["outcome"] != "erased" {
			t.Errorf("request.completed details = %v, want outcome erased", completed.Details)
		}

		unknown := lethe.Identity{Type: lethe.IdentityEmail, Value: "nobody@example.net"}
		r := waitDone(t, st, submit(t, st, p, unknown), lethe.StatusCompleted)
		if r.Outcome != lethe.OutcomeNoMatch {
			t.Errorf("unknown subject: outcome = %q, want no_match", r.Outcome)
		}
		for _, task := range r.Tasks {
			if task.State != lethe.TaskDone || task.Report.Total() != 0 {
				t.Errorf("task %s = %s with %d rows, want done with 0", task.Target, task.State, task.Report.Total())
			}
		}
	})
}

// TestPlanShowsWhyARequestWouldStop: the dry run of an ambiguous subject
// names the stop and the accounts, and plans no target.
func TestPlanShowsWhyARequestWouldStop(t *testing.T) {
	t.Parallel()
	users := &accountTarget{memTarget: newMemTarget(), accounts: map[lethe.Identity][]string{sharedPhone: {"1", "2"}}}
	pl, err := NewPlanner(Config{}, []Target{{"users", users}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pl.Plan(context.Background(), []lethe.Identity{sharedPhone})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Stop != lethe.OutcomeAmbiguousSubject || plan.Reach.Accounts["users/users"] != 2 || len(plan.Targets) != 0 {
		t.Errorf("plan = stop %q reach %+v targets %d, want ambiguous_subject, 2 accounts, no targets", plan.Stop, plan.Reach, len(plan.Targets))
	}
	if users.count("plan") != 0 {
		t.Errorf("plan calls = %d, want none", users.count("plan"))
	}

	plan, err = pl.Plan(context.Background(), []lethe.Identity{email})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Stop != "" || len(plan.Targets) != 1 {
		t.Errorf("plan of an unambiguous subject = stop %q, %d targets; want no stop, 1 target", plan.Stop, len(plan.Targets))
	}
}

func TestMatchOutcome(t *testing.T) {
	t.Parallel()
	item := func(a lethe.Action, n int64) lethe.Task {
		return lethe.Task{Report: lethe.Report{Items: []lethe.ReportItem{{Object: "o", Action: a, Rows: n}}}}
	}
	for _, c := range []struct {
		name  string
		tasks []lethe.Task
		want  lethe.Outcome
	}{
		{"no tasks", nil, lethe.OutcomeNoMatch},
		{"zero rows everywhere", []lethe.Task{item(lethe.ActionDelete, 0), item(lethe.ActionRetain, 0)}, lethe.OutcomeNoMatch},
		{"deleted", []lethe.Task{item(lethe.ActionDelete, 0), item(lethe.ActionDelete, 2)}, lethe.OutcomeErased},
		{"only retained", []lethe.Task{item(lethe.ActionRetain, 1)}, lethe.OutcomeErased},
		{"forwarded", []lethe.Task{item(lethe.ActionForward, 1)}, lethe.OutcomeErased},
	} {
		if got := lethe.MatchOutcome(c.tasks); got != c.want {
			t.Errorf("%s: MatchOutcome = %q, want %q", c.name, got, c.want)
		}
	}
}
