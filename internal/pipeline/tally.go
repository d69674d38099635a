package pipeline

import (
	"context"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// settle is a task's final report: per object, the larger of the plan
// taken before the first Erase attempt and the sum of every attempt's
// report (store.AddReport), for deleted, pseudonymised and forwarded rows
// alike; retain lines keep their largest count either way.
//
// Neither number alone is right:
//   - the sum misses a batch that the target committed just before lethe
//     died, because the attempt never returned its report; the next attempt
//     finds those rows gone and reports only the rest. The plan counted
//     them, so the larger of the two restores them.
//   - the plan misses rows created between Plan and Erase (a write racing
//     the request), which Erase did find and change; the sum counted them.
//
// The maximum is still a bound, not a proof: rows created after the plan
// AND lost in a crash can go uncounted. What Verify checks afterwards is
// that nothing is left, which does not depend on these counts.
func settle(t store.TaskTally) lethe.Report {
	out := lethe.Report{Items: make([]lethe.ReportItem, 0, len(t.Plan.Items)+len(t.Progress.Items))}
	type key struct {
		object string
		action lethe.Action
	}
	done := make(map[key]lethe.ReportItem, len(t.Progress.Items))
	for _, it := range t.Progress.Items {
		done[key{it.Object, it.Action}] = it
	}
	// The plan's order first: it lists every object, in the connector's
	// order, even those with no rows.
	for _, it := range t.Plan.Items {
		k := key{it.Object, it.Action}
		if d, ok := done[k]; ok {
			it.Rows = max(it.Rows, d.Rows)
			if d.Reason != "" {
				it.Reason = d.Reason
			}
			if !d.Until.IsZero() {
				it.Until = d.Until
			}
			delete(done, k)
		} else if it.Rows == 0 && len(t.Progress.Items) > 0 {
			// A plan line with no rows that no attempt reported claims
			// nothing; keeping it would carry a planning-time placeholder
			// (a webhook without plan_url says "counts are known once the
			// service answers") into the receipt after the service answered.
			continue
		}
		out.Items = append(out.Items, it)
	}
	for _, it := range t.Progress.Items {
		if _, ok := done[key{it.Object, it.Action}]; ok {
			out.Items = append(out.Items, it)
		}
	}
	return out
}

// attempt is the outcome of one Erase attempt on a target.
type attempt struct {
	report lethe.Report // the task's report so far: settle of its tally
	err    error        // the connector's error (Plan's or Erase's), unredacted
}

// eraseAttempt runs one Erase attempt with the bookkeeping that makes the
// task's final counts right across retries and crashes: before the first
// attempt it takes and stores the connector's Plan, and after every attempt,
// failed ones included, it adds the attempt's report to the task's progress
// in a transaction of its own (on bctx, so a job cut short still records
// what it did). Its error is the store's, which the caller returns for
// River to retry; the connector's is in the attempt.
func (p *Pipeline) eraseAttempt(ctx, bctx context.Context, requestID, target string, conn connector.Connector, s connector.Subject) (attempt, error) {
	tally, err := p.st.TaskTally(ctx, requestID, target)
	if err != nil {
		return attempt{}, err
	}
	if !tally.Planned {
		plan, err := call(p.log, target, func() (lethe.Report, error) { return conn.Plan(ctx, s) })
		if err != nil {
			// Without a plan nothing is erased: a crash in the attempt
			// could then lose counts that nothing would restore.
			return attempt{report: settle(tally), err: err}, nil
		}
		if _, err := p.st.SetTaskPlan(ctx, requestID, target, plan, p.now()); err != nil {
			return attempt{}, err
		}
		// Read it back: a duplicate job may have stored its plan first,
		// and only one plan may count.
		if tally, err = p.st.TaskTally(ctx, requestID, target); err != nil {
			return attempt{}, err
		}
	}
	report, err := call(p.log, target, func() (lethe.Report, error) { return conn.Erase(ctx, s) })
	after, serr := p.st.AddTaskProgress(bctx, requestID, target, report, p.now())
	if serr != nil {
		// The attempt's rows are lost from the sum; the plan bounds them,
		// and the retry finds only what is left.
		return attempt{}, serr
	}
	return attempt{report: settle(after), err: err}, nil
}
