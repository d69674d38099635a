package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// testHolds: holds are listed in order, ended by reason, and a waiting
// period is due only once it has passed and while its request is held.
func testHolds(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, ""))
	if ok, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusHeld, ToStage: lethe.StageResolve, At: t0}); err != nil || !ok {
		t.Fatalf("hold: %v %v", ok, err)
	}
	until := t0.Add(72 * time.Hour)
	for _, h := range []store.Hold{
		{RequestID: r.ID, Reason: lethe.HoldWaitingPeriod, Until: until, PlacedAt: t0},
		{RequestID: r.ID, Reason: lethe.HoldLegal, Note: "case 17", PlacedAt: t0, PlacedBy: "lee"},
	} {
		if _, err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := s.DueWaitingPeriods(ctx, until.Add(-time.Second), 10); err != nil || len(ids) != 0 {
		t.Errorf("due before the period ended: %v, %v", ids, err)
	}
	if ids, err := s.DueWaitingPeriods(ctx, until, 10); err != nil || len(ids) != 1 || ids[0] != r.ID {
		t.Errorf("due when it ended: %v, %v", ids, err)
	}
	n, err := s.EndHolds(ctx, store.EndHoldsParams{RequestID: r.ID, Reasons: []lethe.HoldReason{lethe.HoldLegal}, As: store.HoldReleased, By: "lee", At: t0.Add(time.Hour)})
	if err != nil || n != 1 {
		t.Fatalf("end legal hold = %d, %v", n, err)
	}
	if n, err := s.EndHolds(ctx, store.EndHoldsParams{RequestID: r.ID, Reasons: []lethe.HoldReason{lethe.HoldLegal}, As: store.HoldReleased, At: t0.Add(time.Hour)}); err != nil || n != 0 {
		t.Errorf("ending it again = %d, %v", n, err)
	}
	hs, err := s.ListHolds(ctx, r.ID)
	if err != nil || len(hs) != 2 {
		t.Fatalf("holds = %+v, %v", hs, err)
	}
	if !hs[0].Active() || !hs[0].Until.Equal(micro(until)) || hs[1].Active() || hs[1].EndedAs != store.HoldReleased || hs[1].EndedBy != "lee" || hs[1].Note != "case 17" {
		t.Errorf("holds = %+v", hs)
	}
	if n, err := s.EndHolds(ctx, store.EndHoldsParams{RequestID: r.ID, As: store.HoldCanceled, At: t0.Add(2 * time.Hour)}); err != nil || n != 1 {
		t.Errorf("end every hold = %d, %v", n, err)
	}
	if ids, err := s.DueWaitingPeriods(ctx, until, 10); err != nil || len(ids) != 0 {
		t.Errorf("an ended waiting period is due: %v, %v", ids, err)
	}
}

// testRetryAndSkip: only a failed task is retried, with its attempts back
// to zero, its report kept and a lost report still counted as lost; a
// skip ends a failed or open task, not a done one; a bulk retry marks each
// task once; a failed request reopens as open, with its end cleared.
func testRetryAndSkip(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, ""))
	if err := s.CreateTasks(ctx, r.ID, []string{"a", "b", "c"}, t0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := s.StartTaskAttempt(ctx, r.ID, "a", t0); err != nil {
			t.Fatal(err)
		}
	}
	rep := lethe.Report{Items: []lethe.ReportItem{{Object: "rows", Action: lethe.ActionDelete, Rows: 2}}}
	for i := 0; i < 2; i++ { // one of the three attempts' reports was lost
		if _, err := s.AddTaskProgress(ctx, r.ID, "a", rep, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := mustRetry(t, s, r.ID, "a"); ok {
		t.Fatal("a running task was retried")
	}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "a", State: lethe.TaskFailed, LastError: "down", At: t0.Add(time.Minute)}); err != nil || !ok {
		t.Fatal(err)
	}
	before, ok := mustRetry(t, s, r.ID, "a")
	if !ok || before.Attempts != 3 || before.State != lethe.TaskFailed {
		t.Fatalf("retry = %+v, %v", before, ok)
	}
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a := tasks[0]; a.State != lethe.TaskPending || a.Attempts != 0 || a.LastError != "" || !a.StartedAt.IsZero() || !a.FinishedAt.IsZero() {
		t.Errorf("retried task = %+v", a)
	}
	tally, err := s.TaskTally(ctx, r.ID, "a")
	if err != nil || tally.Progress.Total() != 4 || tally.Recorded != -1 {
		t.Errorf("tally after retry = %+v, %v; want the 4 rows kept and recorded 2-3", tally, err)
	}

	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "b", State: lethe.TaskDone, At: t0}); err != nil || !ok {
		t.Fatal(err)
	}
	if ok, err := s.SkipTask(ctx, r.ID, "b", "no", t0); err != nil || ok {
		t.Errorf("skipping a done task = %v, %v", ok, err)
	}
	if ok, err := s.SkipTask(ctx, r.ID, "c", "skipped by rita: gone", t0); err != nil || !ok {
		t.Errorf("skipping a pending task = %v, %v", ok, err)
	}

	// A bulk retry picks failed tasks of its target, each once.
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "a", State: lethe.TaskFailed, At: t0.Add(time.Minute)}); err != nil || !ok {
		t.Fatal(err)
	}
	if ok, err := s.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, To: lethe.StatusFailed, ToStage: lethe.StageDone, At: t0.Add(time.Hour), Outcome: "x"}); err != nil || !ok {
		t.Fatal(err)
	}
	b := store.BulkRetry{ID: newID(t), Target: "a", Cutoff: t0.Add(time.Hour), Actor: lethe.ActorAdmin, CreatedAt: t0.Add(time.Hour)}
	if err := s.CreateBulkRetry(ctx, b); err != nil {
		t.Fatal(err)
	}
	early := store.BulkRetry{ID: b.ID, Target: "a", Cutoff: t0}
	if ts, err := s.FailedTasksOf(ctx, early, 10); err != nil || len(ts) != 0 {
		t.Errorf("tasks failed after the cutoff: %+v, %v", ts, err)
	}
	ts, err := s.FailedTasksOf(ctx, b, 10)
	if err != nil || len(ts) != 1 || ts[0].Target != "a" {
		t.Fatalf("failed tasks = %+v, %v", ts, err)
	}
	if fresh, err := s.MarkBulkRetried(ctx, b.ID, r.ID, "a"); err != nil || !fresh {
		t.Fatalf("mark = %v, %v", fresh, err)
	}
	if fresh, err := s.MarkBulkRetried(ctx, b.ID, r.ID, "a"); err != nil || fresh {
		t.Errorf("marking twice = %v, %v", fresh, err)
	}
	if ts, err := s.FailedTasksOf(ctx, b, 10); err != nil || len(ts) != 0 {
		t.Errorf("a marked task is offered again: %+v, %v", ts, err)
	}
	got, err := s.GetBulkRetry(ctx, b.ID)
	if err != nil || got.Retried != 1 || !got.FinishedAt.IsZero() {
		t.Errorf("bulk retry = %+v, %v", got, err)
	}

	ok, err = s.ReopenRequest(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusFailed}, FromStage: []lethe.Stage{lethe.StageDone},
		To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t0.Add(2 * time.Hour)})
	if err != nil || !ok {
		t.Fatalf("reopen = %v, %v", ok, err)
	}
	back, err := s.GetRequest(ctx, r.ID, store.Scope{All: true})
	if err != nil || back.Status != lethe.StatusRunning || !back.CompletedAt.IsZero() || back.Outcome != "" {
		t.Errorf("reopened request = %+v, %v", back, err)
	}
	if ok, err := s.ReopenRequest(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusFailed}, FromStage: []lethe.Stage{lethe.StageDone},
		To: lethe.StatusRunning, ToStage: lethe.StageErase, At: t0}); err != nil || ok {
		t.Errorf("reopening an open request = %v, %v", ok, err)
	}
}

func mustRetry(t *testing.T, s store.Store, id, target string) (lethe.Task, bool) {
	t.Helper()
	before, ok, err := s.RetryTask(context.Background(), id, target, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return before, ok
}
