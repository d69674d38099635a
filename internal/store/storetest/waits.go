package storetest

import (
	"bytes"
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

// testTaskWaits checks the record kept while a target works asynchronously:
// checkpoints are sealed and replaced, a pending answer does not count as
// an attempt, the callback token is stable and found by its hash, a
// completion is taken once, and ending the task drops checkpoint and token
// while a late callback can still find the task.
func testTaskWaits(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	t1, t2, t3 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	if err := s.CreateTasks(ctx, r.ID, []string{"api", "db"}, t0); err != nil {
		t.Fatal(err)
	}
	if w, err := s.TaskWait(ctx, r.ID, "api"); err != nil || !cmp.Equal(w, store.TaskWait{}) {
		t.Fatalf("TaskWait of a new task = %+v, %v; want zero", w, err)
	}
	if _, ok, err := s.StartTaskAttempt(ctx, r.ID, "api", t1); err != nil || !ok {
		t.Fatalf("StartTaskAttempt = %v, %v", ok, err)
	}

	// The token: created once, the same for every caller, even concurrent.
	var wg sync.WaitGroup
	tokens := make([]string, 4)
	errs := make([]error, 4)
	for i := range tokens {
		wg.Go(func() { tokens[i], errs[i] = s.TaskConfirmationToken(ctx, r.ID, "api", t1) })
	}
	wg.Wait()
	for i := range tokens {
		if errs[i] != nil || tokens[i] == "" || tokens[i] != tokens[0] {
			t.Fatalf("TaskConfirmationToken #%d = %q, %v; want one token for all", i, tokens[i], errs[i])
		}
	}
	token := tokens[0]
	assertAbsent(t, s, "task_waits", token)
	if task, err := s.FindTaskByConfirmationToken(ctx, token); err != nil || task.Target != "api" || task.RequestID != r.ID {
		t.Errorf("FindTaskByConfirmationToken = %+v, %v", task, err)
	}
	if _, err := s.FindTaskByConfirmationToken(ctx, token+"0"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindTaskByConfirmationToken of an unknown token: %v, want ErrNotFound", err)
	}
	if _, err := s.TaskConfirmationToken(ctx, r.ID, "nope", t1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TaskConfirmationToken of a missing task: %v, want ErrNotFound", err)
	}

	// Pending answers: the first is reported as such, checkpoints replace
	// each other, and the attempt is taken back.
	checkpoint := "https://svc.example/check/" + newID(t)
	first, ok, err := s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "api", Checkpoint: checkpoint, Reason: "accepted", At: t2})
	if err != nil || !first || !ok {
		t.Fatalf("first SetTaskPending = %v, %v, %v", first, ok, err)
	}
	assertAbsent(t, s, "task_waits", checkpoint)
	if _, _, err := s.StartTaskAttempt(ctx, r.ID, "api", t2); err != nil {
		t.Fatal(err)
	}
	first, ok, err = s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "api", Checkpoint: checkpoint + "/2", Reason: "still working", At: t3})
	if err != nil || first || !ok {
		t.Fatalf("second SetTaskPending = %v, %v, %v; want not first", first, ok, err)
	}
	w, err := s.TaskWait(ctx, r.ID, "api")
	want := store.TaskWait{Checkpoint: checkpoint + "/2", PendingSince: micro(t2), Polls: 2}
	if err != nil || !cmp.Equal(want, w) {
		t.Errorf("TaskWait = %+v, %v; want %+v", w, err, want)
	}
	tasks, err := s.ListTasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tasks[0].Attempts != 0 || tasks[0].State != lethe.TaskRunning || tasks[0].LastError != "still working" {
		t.Errorf("task after pending answers = %+v; want running, 0 attempts, last error the reason", tasks[0])
	}
	if _, _, err := s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "api", Checkpoint: "", Reason: "waiting for the callback", At: t3}); err != nil {
		t.Fatal(err)
	}
	if w, err := s.TaskWait(ctx, r.ID, "api"); err != nil || w.Checkpoint != "" {
		t.Errorf("an empty checkpoint must clear the stored one: %q, %v", w.Checkpoint, err)
	}

	// A completion is taken once.
	c := store.TaskCompletion{Report: lethe.Report{Items: []lethe.ReportItem{{Object: "sessions", Action: lethe.ActionDelete, Rows: 3}}}}
	if ok, err := s.RecordTaskCompletion(ctx, r.ID, "api", c, t3); err != nil || !ok {
		t.Fatalf("RecordTaskCompletion = %v, %v", ok, err)
	}
	if ok, err := s.RecordTaskCompletion(ctx, r.ID, "api", store.TaskCompletion{Failed: true}, t3); err != nil || ok {
		t.Errorf("second RecordTaskCompletion = %v, %v; want false", ok, err)
	}
	w, err = s.TaskWait(ctx, r.ID, "api")
	if err != nil || w.Completion == nil {
		t.Fatalf("TaskWait after completion = %+v, %v", w, err)
	}
	if diff := cmp.Diff(c, *w.Completion, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("completion (-want +got):\n%s", diff)
	}

	// Ending the task drops checkpoint, token and completion, in the same
	// transaction; the token still finds the (ended) task.
	if _, _, err := s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "api", Checkpoint: checkpoint, Reason: "", At: t3}); err != nil {
		t.Fatal(err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "api", State: lethe.TaskDone, Report: c.Report, At: t3})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if w, err := s.TaskWait(ctx, r.ID, "api"); err != nil || w.Checkpoint != "" || w.Completion != nil {
		t.Errorf("TaskWait of an ended task = %+v, %v; want checkpoint and completion dropped", w, err)
	}
	if task, err := s.FindTaskByConfirmationToken(ctx, token); err != nil || task.State != lethe.TaskDone {
		t.Errorf("FindTaskByConfirmationToken after the end = %+v, %v; want the done task", task, err)
	}
	if _, err := s.TaskConfirmationToken(ctx, r.ID, "api", t3); !errors.Is(err, store.ErrConflict) {
		t.Errorf("TaskConfirmationToken of an ended task: %v, want ErrConflict", err)
	}
	if _, ok, err := s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "api", Checkpoint: checkpoint, Reason: "", At: t3}); err != nil || ok {
		t.Errorf("SetTaskPending on an ended task = %v, %v; want not ok", ok, err)
	}
	if ok, err := s.RecordTaskCompletion(ctx, r.ID, "api", c, t3); err != nil || ok {
		t.Errorf("RecordTaskCompletion on an ended task = %v, %v; want false", ok, err)
	}
	// The other task never waited.
	if w, err := s.TaskWait(ctx, r.ID, "db"); err != nil || !cmp.Equal(w, store.TaskWait{}) {
		t.Errorf("TaskWait of another task = %+v, %v", w, err)
	}
}

// testTaskWaitsEnd checks that whatever ends a task drops what its wait
// holds (checkpoint, sealed token, completion) in the ending transaction,
// however the wait began (a token only, a pending answer only, a wait
// after a retry), while the token's hash still finds the ended task; and
// that ending a task that never waited leaves no wait behind.
func testTaskWaitsEnd(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := mustCreate(t, s, newRequest(t, "c1"))
	t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second)
	if err := s.CreateTasks(ctx, r.ID, []string{"none", "retried", "skipped", "token"}, t0); err != nil {
		t.Fatal(err)
	}
	c := store.TaskCompletion{Report: lethe.Report{Items: []lethe.ReportItem{{Object: "sessions", Action: lethe.ActionDelete, Rows: 1}}}}

	// A token alone, then the end.
	token, err := s.TaskConfirmationToken(ctx, r.ID, "token", t1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "token", State: lethe.TaskDone, At: t2}); err != nil || !ok {
		t.Fatalf("FinishTask = %v, %v", ok, err)
	}

	// A pending answer and a completion, then a skip seen from inside the
	// skipping transaction.
	if _, ok, err := s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "skipped", Checkpoint: "https://svc.example/check/1", Reason: "accepted", At: t1}); err != nil || !ok {
		t.Fatalf("SetTaskPending = %v, %v", ok, err)
	}
	if ok, err := s.RecordTaskCompletion(ctx, r.ID, "skipped", c, t1); err != nil || !ok {
		t.Fatalf("RecordTaskCompletion = %v, %v", ok, err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		if ok, err := tx.SkipTask(ctx, r.ID, "skipped", "by hand", t2); err != nil || !ok {
			return fmt.Errorf("SkipTask = %v, %v", ok, err)
		}
		w, err := tx.TaskWait(ctx, r.ID, "skipped")
		if err != nil {
			return err
		}
		if w.Checkpoint != "" || w.Completion != nil {
			t.Errorf("TaskWait in the skipping transaction = %+v; want checkpoint and completion dropped", w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A wait, a failure, a retry (which forgets the wait), a new wait and
	// the end.
	if _, err := s.TaskConfirmationToken(ctx, r.ID, "retried", t1); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "retried", State: lethe.TaskFailed, LastError: "down", At: t1}); err != nil || !ok {
		t.Fatalf("FinishTask = %v, %v", ok, err)
	}
	if _, ok, err := s.RetryTask(ctx, r.ID, "retried", t1); err != nil || !ok {
		t.Fatalf("RetryTask = %v, %v", ok, err)
	}
	if _, ok, err := s.SetTaskPending(ctx, store.SetTaskPendingParams{RequestID: r.ID, Target: "retried", Checkpoint: "https://svc.example/check/2", Reason: "accepted", At: t2}); err != nil || !ok {
		t.Fatalf("SetTaskPending after retry = %v, %v", ok, err)
	}
	retriedToken, err := s.TaskConfirmationToken(ctx, r.ID, "retried", t2)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "retried", State: lethe.TaskDone, At: t2}); err != nil || !ok {
		t.Fatalf("FinishTask after retry = %v, %v", ok, err)
	}

	// A task that never waited.
	if ok, err := s.FinishTask(ctx, store.FinishTaskParams{RequestID: r.ID, Target: "none", State: lethe.TaskDone, At: t2}); err != nil || !ok {
		t.Fatalf("FinishTask = %v, %v", ok, err)
	}

	// Read around the store: the dropped columns are NULL, the token's
	// hash is kept.
	got := map[string]string{}
	for _, row := range rawRows(t, s, `SELECT target,
		CASE WHEN checkpoint_sealed IS NULL THEN '-' ELSE 'checkpoint' END,
		CASE WHEN token_sealed IS NULL THEN '-' ELSE 'token' END,
		CASE WHEN completion IS NULL THEN '-' ELSE 'completion' END,
		CASE WHEN token_hash IS NULL THEN '-' ELSE 'hash' END
		FROM task_waits WHERE request_id = '`+r.ID+`'`) {
		got[string(row[0])] = string(bytes.Join(row[1:], []byte(" ")))
	}
	want := map[string]string{
		"token":   "- - - hash",
		"skipped": "- - - -",
		"retried": "- - - hash",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task_waits of ended tasks (-want +got):\n%s", diff)
	}
	for tok, target := range map[string]string{token: "token", retriedToken: "retried"} {
		if task, err := s.FindTaskByConfirmationToken(ctx, tok); err != nil || task.Target != target || task.State != lethe.TaskDone {
			t.Errorf("FindTaskByConfirmationToken after the end = %+v, %v; want the done task %s", task, err, target)
		}
	}
}
