package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// testTaskTally checks the bookkeeping behind a task's final report: the
// first plan is kept, attempts' reports add up (retain lines keep the
// largest), concurrent additions are not lost, and an ended task's tally
// no longer changes.
func testTaskTally(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second)
	if err := s.CreateTasks(ctx, r.ID, []string{"db", "cache"}, t0); err != nil {
		t.Fatal(err)
	}
	opts := cmpopts.EquateEmpty()
	until := time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
	del := func(obj string, n int64) lethe.ReportItem {
		return lethe.ReportItem{Object: obj, Action: lethe.ActionDelete, Rows: n}
	}
	keep := func(n int64) lethe.ReportItem {
		return lethe.ReportItem{Object: "invoices", Action: lethe.ActionRetain, Rows: n, Reason: "tax law", Until: until}
	}

	got, err := s.TaskTally(ctx, r.ID, "db")
	if err != nil || got.Planned || len(got.Plan.Items) != 0 || len(got.Progress.Items) != 0 {
		t.Fatalf("TaskTally of a new task = %+v, %v; want empty", got, err)
	}

	plan := lethe.Report{Items: []lethe.ReportItem{del("users", 1), del("orders", 5), keep(3)}}
	if ok, err := s.SetTaskPlan(ctx, r.ID, "db", plan, t1); err != nil || !ok {
		t.Fatalf("SetTaskPlan = %v, %v", ok, err)
	}
	// A later plan sees less (earlier attempts erased rows): the first stays.
	if ok, err := s.SetTaskPlan(ctx, r.ID, "db", lethe.Report{Items: []lethe.ReportItem{del("users", 0)}}, t2); err != nil || ok {
		t.Errorf("second SetTaskPlan = %v, %v; want false", ok, err)
	}

	after, err := s.AddTaskProgress(ctx, r.ID, "db", lethe.Report{Items: []lethe.ReportItem{del("orders", 2), keep(3)}}, t1)
	if err != nil {
		t.Fatal(err)
	}
	want := store.TaskTally{Planned: true, Plan: plan, Progress: lethe.Report{Items: []lethe.ReportItem{del("orders", 2), keep(3)}}, Recorded: 1}
	if diff := cmp.Diff(want, after, opts); diff != "" {
		t.Errorf("AddTaskProgress (-want +got):\n%s", diff)
	}
	// The second attempt no longer reaches the invoices kept through a
	// deleted order: retain keeps 3.
	after, err = s.AddTaskProgress(ctx, r.ID, "db", lethe.Report{Items: []lethe.ReportItem{del("orders", 3), del("users", 1), keep(1)}}, t2)
	if err != nil {
		t.Fatal(err)
	}
	want.Progress = lethe.Report{Items: []lethe.ReportItem{del("orders", 5), keep(3), del("users", 1)}}
	want.Recorded = 2
	if diff := cmp.Diff(want, after, opts); diff != "" {
		t.Errorf("second AddTaskProgress (-want +got):\n%s", diff)
	}
	got, err = s.TaskTally(ctx, r.ID, "db")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("TaskTally (-want +got):\n%s", diff)
	}

	// Concurrent additions (a duplicate job racing the original) are all
	// counted.
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.AddTaskProgress(ctx, r.ID, "cache", lethe.Report{Items: []lethe.ReportItem{del("session", 1)}}, t1)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// An attempt that changed nothing is recorded too, so that a lost
	// report shows as fewer recorded reports than attempts.
	if after, err := s.AddTaskProgress(ctx, r.ID, "cache", lethe.Report{}, t1); err != nil || after.Recorded != n+1 {
		t.Errorf("AddTaskProgress(empty) = %+v, %v; want recorded %d", after, err, n+1)
	}
	got, err = s.TaskTally(ctx, r.ID, "cache")
	if err != nil || len(got.Progress.Items) != 1 || got.Progress.Items[0].Rows != n || got.Planned || got.Recorded != n+1 {
		t.Errorf("TaskTally after %d concurrent additions = %+v, %v", n, got, err)
	}

	// An ended task's tally is final.
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "cache", State: lethe.TaskDone, Report: got.Progress, At: t2}); err != nil || !ok {
		t.Fatalf("FinishTask = %v, %v", ok, err)
	}
	late, err := s.AddTaskProgress(ctx, r.ID, "cache", lethe.Report{Items: []lethe.ReportItem{del("session", 1)}}, t2)
	if err != nil || late.Progress.Items[0].Rows != n {
		t.Errorf("AddTaskProgress on an ended task = %+v, %v; want unchanged", late, err)
	}
	if ok, err := s.SetTaskPlan(ctx, r.ID, "cache", plan, t2); err != nil || ok {
		t.Errorf("SetTaskPlan on an ended task = %v, %v; want false", ok, err)
	}

	// Tally methods say ErrNotFound for a task that does not exist.
	if _, err := s.TaskTally(ctx, r.ID, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TaskTally(missing) = %v; want ErrNotFound", err)
	}
	if _, err := s.SetTaskPlan(ctx, r.ID, "nope", plan, t1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetTaskPlan(missing) = %v; want ErrNotFound", err)
	}
	if _, err := s.AddTaskProgress(ctx, r.ID, "nope", plan, t1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddTaskProgress(missing) = %v; want ErrNotFound", err)
	}

	// The other task fields are untouched by the tally.
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tasks[1].Target != "db" || tasks[1].State != lethe.TaskPending || len(tasks[1].Report.Items) != 0 {
		t.Errorf("task after tally updates = %+v", tasks[1])
	}
}

// testTaskProgressInTx checks progress added inside a transaction: the
// transaction's later reads and additions see it, ending the task keeps
// it, and it is stored with the commit whether or not the task ended.
func testTaskProgressInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	if err := s.CreateTasks(ctx, r.ID, []string{"a", "b", "c", "d"}, t0); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"a", "b", "c", "d"} {
		if _, _, err := s.StartTaskAttempt(ctx, r.ID, target, t0); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(n int64) lethe.Report {
		return lethe.Report{Items: []lethe.ReportItem{{Object: "users", Action: lethe.ActionDelete, Rows: n}}}
	}
	err := s.InTx(ctx, func(tx store.Tx) error {
		// a: added twice, then read, then ended.
		for _, n := range []int64{1, 2} {
			if _, err := tx.AddTaskProgress(ctx, r.ID, "a", rows(n), t0); err != nil {
				return err
			}
		}
		if got, err := tx.TaskTally(ctx, r.ID, "a"); err != nil || got.Progress.Total() != 3 || got.Recorded != 2 {
			t.Errorf("TaskTally in the transaction = %+v, %v; want 3 rows of 2 reports", got, err)
		}
		if _, err := tx.AddTaskProgress(ctx, r.ID, "a", rows(4), t0); err != nil {
			return err
		}
		if ok, err := tx.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "a", State: lethe.TaskDone, Report: rows(7), At: t0}); err != nil || !ok {
			return fmt.Errorf("FinishTask a = %v, %v", ok, err)
		}
		// b: added after c, then ended.
		if _, err := tx.AddTaskProgress(ctx, r.ID, "c", rows(5), t0); err != nil {
			return err
		}
		if _, err := tx.AddTaskProgress(ctx, r.ID, "b", rows(6), t0); err != nil {
			return err
		}
		if ok, err := tx.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "b", State: lethe.TaskFailed, LastError: "down", At: t0}); err != nil || !ok {
			return fmt.Errorf("FinishTask b = %v, %v", ok, err)
		}
		// d: added last, not ended: stored by the commit.
		_, err := tx.AddTaskProgress(ctx, r.ID, "d", rows(8), t0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]struct {
		rows     int64
		recorded int
		state    lethe.TaskState
	}{"a": {7, 3, lethe.TaskDone}, "b": {6, 1, lethe.TaskFailed}, "c": {5, 1, lethe.TaskRunning}, "d": {8, 1, lethe.TaskRunning}} {
		got, err := s.TaskTally(ctx, r.ID, target)
		if err != nil || got.Progress.Total() != want.rows || got.Recorded != want.recorded {
			t.Errorf("TaskTally(%s) after the commit = %+v, %v; want %d rows of %d reports", target, got, err, want.rows, want.recorded)
		}
	}
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		want := map[string]lethe.TaskState{"a": lethe.TaskDone, "b": lethe.TaskFailed, "c": lethe.TaskRunning, "d": lethe.TaskRunning}[task.Target]
		if task.State != want {
			t.Errorf("task %s is %s, want %s", task.Target, task.State, want)
		}
	}
}

// testTaskPlanInTx checks plans set on tasks created in the same
// transaction: the first plan wins, the transaction's reads see it,
// starting the attempt keeps it, and it is stored with the commit whether
// or not the attempt started; tasks that already existed keep their plan.
func testTaskPlanInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	plan := func(n int64) lethe.Report {
		return lethe.Report{Items: []lethe.ReportItem{{Object: "users", Action: lethe.ActionDelete, Rows: n}}}
	}
	if err := s.CreateTasks(ctx, r.ID, []string{"old"}, t0); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SetTaskPlan(ctx, r.ID, "old", plan(9), t0); err != nil || !ok {
		t.Fatalf("SetTaskPlan(old) = %v, %v", ok, err)
	}
	started := map[string]lethe.Task{}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateTasks(ctx, r.ID, []string{"a", "b", "c", "d"}, t0); err != nil {
			return err
		}
		if ok, err := tx.SetTaskPlan(ctx, r.ID, "a", plan(1), t0); err != nil || !ok {
			return fmt.Errorf("SetTaskPlan(a) = %v, %v", ok, err)
		}
		if ok, err := tx.SetTaskPlan(ctx, r.ID, "a", plan(5), t0); err != nil || ok {
			return fmt.Errorf("second SetTaskPlan(a) = %v, %v; want false", ok, err)
		}
		for _, target := range []string{"a", "b"} {
			if target == "b" {
				if ok, err := tx.SetTaskPlan(ctx, r.ID, "b", plan(2), t0); err != nil || !ok {
					return fmt.Errorf("SetTaskPlan(b) = %v, %v", ok, err)
				}
			}
			task, ok, err := tx.StartTaskAttempt(ctx, r.ID, target, t0)
			if err != nil || !ok || task.State != lethe.TaskRunning || task.Attempts != 1 {
				return fmt.Errorf("StartTaskAttempt(%s) = %+v, %v, %v", target, task, ok, err)
			}
			started[target] = task
		}
		if ok, err := tx.SetTaskPlan(ctx, r.ID, "c", plan(3), t0); err != nil || !ok {
			return fmt.Errorf("SetTaskPlan(c) = %v, %v", ok, err)
		}
		if got, err := tx.TaskTally(ctx, r.ID, "c"); err != nil || !got.Planned || got.Plan.Total() != 3 {
			t.Errorf("TaskTally(c) in the transaction = %+v, %v; want the plan of 3", got, err)
		}
		// d: planned last, stored by the commit.
		if ok, err := tx.SetTaskPlan(ctx, r.ID, "d", plan(4), t0); err != nil || !ok {
			return fmt.Errorf("SetTaskPlan(d) = %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Created again (the INSERT finds them), the tasks keep their plans.
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateTasks(ctx, r.ID, []string{"old", "b"}, t0); err != nil {
			return err
		}
		for _, target := range []string{"old", "b"} {
			if ok, err := tx.SetTaskPlan(ctx, r.ID, target, plan(6), t0); err != nil || ok {
				return fmt.Errorf("SetTaskPlan(%s) of a task that existed = %v, %v; want false", target, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		want := map[string]struct {
			plan  int64
			state lethe.TaskState
		}{"a": {1, lethe.TaskRunning}, "b": {2, lethe.TaskRunning}, "c": {3, lethe.TaskPending}, "d": {4, lethe.TaskPending}, "old": {9, lethe.TaskPending}}[task.Target]
		got, err := s.TaskTally(ctx, r.ID, task.Target)
		if err != nil || !got.Planned || got.Plan.Total() != want.plan || task.State != want.state {
			t.Errorf("task %s after the commit: %s, tally %+v, %v; want %s with the plan of %d", task.Target, task.State, got, err, want.state, want.plan)
		}
		if s, ok := started[task.Target]; ok && !cmp.Equal(s, task, cmpopts.EquateEmpty()) {
			t.Errorf("StartTaskAttempt(%s) returned %+v; stored %+v", task.Target, s, task)
		}
	}
}
