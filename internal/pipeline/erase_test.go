package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

func TestSettle(t *testing.T) {
	del := func(obj string, n int64) lethe.ReportItem {
		return lethe.ReportItem{Object: obj, Action: lethe.ActionDelete, Rows: n}
	}
	keep := func(n int64) lethe.ReportItem {
		return lethe.ReportItem{Object: "invoices", Action: lethe.ActionRetain, Rows: n, Reason: "tax law"}
	}
	report := func(items ...lethe.ReportItem) lethe.Report { return lethe.Report{Items: items} }
	lower := func(it lethe.ReportItem) lethe.ReportItem { it.LowerBound = true; return it }
	tests := []struct {
		name     string
		tally    store.TaskTally
		attempts int
		want     lethe.Report
	}{
		{"nothing", store.TaskTally{}, 0, report()},
		{"no plan (a target without one): the sum",
			store.TaskTally{Progress: report(del("users", 1)), Recorded: 1}, 1, report(del("users", 1))},
		{"a delete that failed on every attempt reports nothing done, not the plan",
			store.TaskTally{Planned: true, Plan: report(del("tickets", 1), del("users", 1)), Progress: report(del("tickets", 1), del("users", 0)), Recorded: 3}, 3,
			report(del("tickets", 1), del("users", 0))},
		{"crash lost a batch: the sum, marked a lower bound, never the plan",
			store.TaskTally{Planned: true, Plan: report(del("orders", 50000), del("users", 1)), Progress: report(del("orders", 49000), del("users", 1)), Recorded: 1}, 2,
			report(lower(del("orders", 49000)), lower(del("users", 1)))},
		{"rows created after the plan: the sum",
			store.TaskTally{Planned: true, Plan: report(del("orders", 5)), Progress: report(del("orders", 7)), Recorded: 1}, 1,
			report(del("orders", 7))},
		{"plan order, zero lines an attempt reported kept, extra objects after",
			store.TaskTally{Planned: true, Plan: report(del("sessions", 0), keep(3), del("users", 1)), Progress: report(del("sessions", 0), del("users", 1), keep(2), del("audit", 4)), Recorded: 1}, 1,
			report(del("sessions", 0), keep(3), del("users", 1), del("audit", 4))},
		{"a zero plan line no attempt reported is a placeholder: dropped",
			store.TaskTally{Planned: true, Plan: report(lethe.ReportItem{Object: "service", Action: lethe.ActionForward, Reason: "counts are known once the service answers"}), Progress: report(del("accounts", 1)), Recorded: 1}, 1,
			report(del("accounts", 1))},
		{"before any attempt reported, nothing is claimed done",
			store.TaskTally{Planned: true, Plan: report(del("sessions", 0), del("users", 1), keep(2))}, 1,
			report(lower(del("sessions", 0)), lower(del("users", 0)), keep(2))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, settle(tc.tally, tc.attempts), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("settle (-want +got):\n%s", diff)
			}
		})
	}
}

// batchTarget erases at most batch rows per Erase call and fails after
// every batch but the last, reporting what it committed, as sqlconn does
// when a connection drops between batches. It can also gain rows between
// Plan and the first Erase (a write racing the request).
type batchTarget struct {
	*memTarget
	batch     int64
	lateRows  int64 // added to the subject by the first Erase call, before erasing
	planned   bool
	eraseCall int
}

func (b *batchTarget) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	b.mu.Lock()
	b.planned = true
	b.mu.Unlock()
	return b.memTarget.Plan(ctx, s)
}

func (b *batchTarget) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.eraseCall++
	if !b.planned {
		return lethe.Report{}, errors.New("Erase before Plan")
	}
	id := s.Identities[0]
	if b.eraseCall == 1 {
		b.rows[id] += b.lateRows
	}
	n := min(b.batch, b.rows[id])
	b.rows[id] -= n
	r := lethe.Report{Items: []lethe.ReportItem{{Object: "rows", Action: lethe.ActionDelete, Rows: n}}}
	if b.rows[id] > 0 {
		return r, errors.New("connection reset between batches")
	}
	return r, nil
}

// TestTotalsAcrossAttempts checks that a task's report counts every row
// erased over all its attempts, not only the last attempt's, and that rows
// appearing after the plan are counted too.
func TestTotalsAcrossAttempts(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		split := &batchTarget{memTarget: newMemTarget(), batch: 4}
		split.put(email, 10) // attempts erase 4, 4, 2
		late := &batchTarget{memTarget: newMemTarget(), batch: 100, lateRows: 3}
		late.put(email, 5) // planned 5, erased 8
		p := start(t, st, testConfig(), Target{"split", split}, Target{"late", late})

		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)
		if got := taskOf(t, r, "split"); got.Attempts != 3 || got.Report.Total() != 10 {
			t.Errorf("split task: %d attempts, %d rows; want 3 attempts and 10 rows", got.Attempts, got.Report.Total())
		}
		if got := taskOf(t, r, "late"); got.Report.Total() != 8 {
			t.Errorf("late task: %d rows; want 8 (5 planned + 3 written after the plan)", got.Report.Total())
		}
		if n := split.count("plan"); n != 1 {
			t.Errorf("Plan calls = %d, want 1 (before the first attempt only)", n)
		}
		events, err := st.ListAudit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Type == "task.done" && e.Details["target"] == "split" && e.Details["rows"] != "10" {
				t.Errorf("task.done rows = %s, want 10", e.Details["rows"])
			}
		}
	})
}
