package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// storeAt stores a request at (status, stage) with a pending task per
// target and no job, the way an operator's action leaves one before it
// asks Redrive to carry it on.
func storeAt(t *testing.T, st store.Store, status lethe.Status, stage lethe.Stage, targets ...string) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{
		ID: uuid.Must(uuid.NewV7()).String(), Regulation: lethe.GDPR, Status: status, Stage: stage,
		Identities: []lethe.Identity{email}, SubjectKey: randomHex(16),
		ReceivedAt: now, DueAt: now.Add(lethe.DefaultDeadlines[lethe.GDPR]), UpdatedAt: now,
	}
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		if len(targets) == 0 {
			return nil
		}
		return tx.CreateTasks(ctx, r.ID, targets, now)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func redrive(t *testing.T, st store.Store, p *Pipeline, id string) error {
	t.Helper()
	ctx := context.Background()
	return st.InTx(ctx, func(tx store.Tx) error { return p.Redrive(ctx, tx, id) })
}

func TestRedriveCarriesRequestOnFromItsStage(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		a := newMemTarget()
		p := build(t, st, testConfig(), Target{"a", a})
		resolveAgain := storeAt(t, st, lethe.StatusRunning, lethe.StageResolve)
		erase := storeAt(t, st, lethe.StatusRunning, lethe.StageErase, "a")
		// A request whose first job is still queued: the redrive's job
		// must get in beside it (no unique skip) and both must take
		// effect once.
		queued := submit(t, st, p, email)
		for _, id := range []string{resolveAgain, erase, queued} {
			if err := redrive(t, st, p, id); err != nil {
				t.Fatalf("redrive %s: %v", id, err)
			}
		}
		kinds := riverJobKinds(t, st)
		if n := len(slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k != kindResolve })); n != 3 {
			t.Errorf("resolve jobs = %d, want 3 (the queued one and two redriven); jobs: %v", n, kinds)
		}
		a.put(email, 2)
		startBuilt(t, p)
		for _, id := range []string{resolveAgain, erase, queued} {
			waitDone(t, st, id, lethe.StatusCompleted)
		}
		waitIdle(t, p)
		for _, id := range []string{resolveAgain, queued} {
			want := map[string]int{"request.running": 1, "task.running": 1, "task.done": 1, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
			if diff := cmp.Diff(want, auditTypes(t, st, id)); diff != "" {
				t.Errorf("audit events of %s (-want +got):\n%s", id, diff)
			}
		}
		want := map[string]int{"task.running": 1, "task.done": 1, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, erase)); diff != "" {
			t.Errorf("audit events of the request redriven in erase (-want +got):\n%s", diff)
		}

		// A request that has ended is not carried on, and nothing is
		// inserted for it.
		before := len(riverJobKinds(t, st))
		if err := redrive(t, st, p, erase); err == nil {
			t.Error("redrive of a completed request: no error")
		}
		if after := len(riverJobKinds(t, st)); after != before {
			t.Errorf("redrive of a completed request inserted %d jobs", after-before)
		}
	})
}

func TestRedriveVerifyAndFinish(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		a := newMemTarget()
		p := build(t, st, testConfig(), Target{"a", a})
		ctx := context.Background()
		verify := storeAt(t, st, lethe.StatusRunning, lethe.StageVerify, "a")
		finish := storeAt(t, st, lethe.StatusRunning, lethe.StageFinish, "a")
		allEnded := storeAt(t, st, lethe.StatusRunning, lethe.StageErase, "a")
		for _, id := range []string{verify, finish, allEnded} {
			if _, err := st.FinishTask(ctx, store.FinishTaskParams{RequestID: id, Target: "a", State: lethe.TaskDone, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := redrive(t, st, p, id); err != nil {
				t.Fatalf("redrive: %v", err)
			}
		}
		startBuilt(t, p)
		for _, id := range []string{verify, allEnded} {
			waitDone(t, st, id, lethe.StatusCompleted)
			if n := auditTypes(t, st, id)["request.verified"]; n != 1 {
				t.Errorf("request.verified events = %d, want 1", n)
			}
		}
		waitDone(t, st, finish, lethe.StatusCompleted)
		if n := a.count("erase"); n != 0 {
			t.Errorf("Erase calls = %d, want 0: every task had ended", n)
		}
	})
}
