package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

func testTasks(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	t1, t2, t3 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	if err := s.CreateTasks(ctx, r.ID, []string{"db", "cache", "api"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.StartTaskAttempt(ctx, r.ID, "db", t1); err != nil || !ok {
		t.Fatalf("StartTaskAttempt = %v, %v", ok, err)
	}
	// A replayed create leaves existing tasks as they are.
	if err := s.CreateTasks(ctx, r.ID, []string{"db", "cache", "api", "zeta"}, t2); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	pending := func(target string, at time.Time) lethe.Task {
		return lethe.Task{RequestID: r.ID, Target: target, State: lethe.TaskPending, UpdatedAt: micro(at)}
	}
	running := lethe.Task{RequestID: r.ID, Target: "db", State: lethe.TaskRunning, Attempts: 1, StartedAt: micro(t1), UpdatedAt: micro(t1)}
	want := []lethe.Task{pending("api", t0), pending("cache", t0), running, pending("zeta", t2)}
	if diff := cmp.Diff(want, tasks, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ListTasks (-want +got):\n%s", diff)
	}
	if n, err := s.CountOpenTasks(ctx, r.ID); err != nil || n != 4 {
		t.Errorf("CountOpenTasks = %d, %v; want 4", n, err)
	}

	if err := s.RecordTaskError(ctx, r.ID, "db", "connection refused", t2); err != nil {
		t.Fatal(err)
	}
	task, ok, err := s.StartTaskAttempt(ctx, r.ID, "db", t2)
	if err != nil || !ok || task.Attempts != 2 || !task.StartedAt.Equal(micro(t1)) || task.LastError != "connection refused" {
		t.Fatalf("second StartTaskAttempt = %+v, %v, %v", task, ok, err)
	}
	report := lethe.Report{Items: []lethe.ReportItem{
		{Object: "users", Action: lethe.ActionDelete, Rows: 1},
		{Object: "invoices", Action: lethe.ActionRetain, Rows: 3, Reason: "tax law", Until: time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)},
	}}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "db", State: lethe.TaskDone, Report: report, At: t3}); err != nil || !ok {
		t.Fatalf("FinishTask = %v, %v", ok, err)
	}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "db", State: lethe.TaskFailed, Report: lethe.Report{}, LastError: "late", At: t3}); err != nil || ok {
		t.Errorf("FinishTask on an ended task = %v, %v; want false", ok, err)
	}
	if _, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "cache", State: lethe.TaskRunning, Report: lethe.Report{}, At: t3}); err == nil {
		t.Error("FinishTask to a non-terminal state succeeded")
	}
	if err := s.RecordTaskError(ctx, r.ID, "db", "late error", t3); err != nil {
		t.Errorf("RecordTaskError on an ended task: %v", err)
	}
	task, ok, err = s.StartTaskAttempt(ctx, r.ID, "db", t3)
	wantDone := lethe.Task{RequestID: r.ID, Target: "db", State: lethe.TaskDone, Attempts: 2, Report: report,
		StartedAt: micro(t1), FinishedAt: micro(t3), UpdatedAt: micro(t3)}
	if err != nil || ok {
		t.Errorf("StartTaskAttempt on an ended task = %v, %v; want false", ok, err)
	}
	if diff := cmp.Diff(wantDone, task, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ended task (-want +got):\n%s", diff)
	}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "cache", State: lethe.TaskSkipped, Report: lethe.Report{}, At: t3}); err != nil || !ok {
		t.Errorf("FinishTask(pending -> skipped) = %v, %v", ok, err)
	}
	if n, err := s.CountOpenTasks(ctx, r.ID); err != nil || n != 2 {
		t.Errorf("CountOpenTasks = %d, %v; want 2", n, err)
	}

	if ok, err := s.FailVerifiedTask(ctx, r.ID, "cache", "left", t3); err != nil || ok {
		t.Errorf("FailVerifiedTask on a skipped task = %v, %v; want false", ok, err)
	}
	if ok, err := s.FailVerifiedTask(ctx, r.ID, "db", "2 rows left in users", t3.Add(time.Second)); err != nil || !ok {
		t.Errorf("FailVerifiedTask = %v, %v", ok, err)
	}
	got, err := s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tasks) != 4 || got.Tasks[2].State != lethe.TaskFailed || got.Tasks[2].LastError != "2 rows left in users" {
		t.Errorf("GetRequest tasks = %+v", got.Tasks)
	}

	_, _, err = s.StartTaskAttempt(ctx, r.ID, "nope", t3)
	wantErr(t, "StartTaskAttempt(unknown)", err, store.ErrNotFound)
	wantErr(t, "RecordTaskError(unknown)", s.RecordTaskError(ctx, r.ID, "nope", "x", t3), store.ErrNotFound)
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "nope", State: lethe.TaskDone, Report: lethe.Report{}, At: t3}); err != nil || ok {
		t.Errorf("FinishTask(unknown) = %v, %v; want false", ok, err)
	}
}
