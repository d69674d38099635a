package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// batchMem is memTarget with EraseBatch: every subject's rows are counted
// for that subject alone. The first batch waits for gate when it is set.
type batchMem struct {
	*memTarget
	gate    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	sizes   []int
}

var _ connector.BatchEraser = (*batchMem)(nil)

func (b *batchMem) EraseBatch(ctx context.Context, subjects []connector.Subject) ([]lethe.Report, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(subjects))
	first := len(b.sizes) == 1
	b.mu.Unlock()
	if first && b.gate != nil {
		b.entered <- struct{}{}
		<-b.gate
	}
	reports := make([]lethe.Report, len(subjects))
	for i, s := range subjects {
		r, err := b.Erase(ctx, s)
		if err != nil {
			return nil, err
		}
		reports[i] = r
	}
	return reports, nil
}

func (b *batchMem) batchSizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

func subjectEmail(i int) lethe.Identity {
	return lethe.Identity{Type: lethe.IdentityEmail, Value: fmt.Sprintf("subject%d@example.com", i)}
}

// TestQueuedSubjectsEraseInOneBatch: requests reaching a batch-capable
// target while a batch runs are erased together in the next one, and each
// request's task reports its own subject's rows exactly.
func TestQueuedSubjectsEraseInOneBatch(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := &batchMem{memTarget: newMemTarget(), gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		const n = 5
		for i := range n {
			target.put(subjectEmail(i), int64(i+1))
		}
		bystander := lethe.Identity{Type: lethe.IdentityEmail, Value: "bystander@example.com"}
		target.put(bystander, 7)
		p := start(t, st, testConfig(), Target{"t", target})

		ids := []string{submit(t, st, p, subjectEmail(0))}
		select {
		case <-target.entered:
		case <-time.After(waitTimeout):
			t.Fatal("the first batch never started")
		}
		for i := 1; i < n; i++ {
			ids = append(ids, submit(t, st, p, subjectEmail(i)))
		}
		waitQueued(t, p.batchers["t"], n-1)
		close(target.gate)

		for i, id := range ids {
			r := waitDone(t, st, id, lethe.StatusCompleted)
			task := taskOf(t, r, "t")
			if got := task.Report.Total(); got != int64(i+1) || task.Attempts != 1 {
				t.Errorf("subject %d: %d rows after %d attempts, want %d after 1", i, got, task.Attempts, i+1)
			}
		}
		if got := target.batchSizes(); len(got) != 2 || got[0] != 1 || got[1] != n-1 {
			t.Errorf("batch sizes = %v, want [1 %d]", got, n-1)
		}
		if target.held(bystander) != 7 {
			t.Error("the bystander's rows were touched")
		}
	})
}

// TestKilledInsideEraseBatch leaves what a process killed inside a batch
// of three subjects leaves: the batch had erased the first subject's rows
// and not the others', no report was recorded, and the three requests'
// jobs are "running" under the dead process. After the restart every
// request completes once with its subject erased, and, as lethe cannot
// know what the killed batch changed (the target keeps no ledger), every
// count says it is a lower bound.
func TestKilledInsideEraseBatch(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := &batchMem{memTarget: newMemTarget()}
		for i := range 3 {
			target.put(subjectEmail(i), 2)
		}
		bystander := lethe.Identity{Type: lethe.IdentityEmail, Value: "bystander@example.com"}
		target.put(bystander, 7)
		cfg := testConfig()
		cfg.JobTimeout = time.Second
		cfg.RescueStuckJobsAfter = 2 * time.Second
		p := build(t, st, cfg, Target{"t", target})
		var ids []string
		for i := range 3 {
			id := submit(t, st, p, subjectEmail(i))
			killedAfterStart(t, st, p, id, "t")
			ids = append(ids, id)
		}
		target.put(subjectEmail(0), 0) // the killed batch's first subject
		startBuilt(t, p)
		for i, id := range ids {
			r := waitDone(t, st, id, lethe.StatusCompleted)
			task := taskOf(t, r, "t")
			if task.Attempts != 2 || target.held(subjectEmail(i)) != 0 {
				t.Errorf("subject %d: %d attempts, %d rows left; want 2 and none", i, task.Attempts, target.held(subjectEmail(i)))
			}
			for _, it := range task.Report.Items {
				if !it.LowerBound {
					t.Errorf("subject %d: line %+v does not say it may be short", i, it)
				}
			}
			if n := auditTypes(t, st, id)["request.completed"]; n != 1 {
				t.Errorf("subject %d: %d request.completed events", i, n)
			}
		}
		if target.held(bystander) != 7 {
			t.Error("the bystander's rows were touched")
		}
	})
}

// verifyMem is memTarget with VerifyBatch, answering each subject from its
// own rows alone; Erase leaves one row of late behind (a late writer). The
// first batch waits for gate. Verify calls outside a batch are noted.
type verifyMem struct {
	*memTarget
	late    lethe.Identity
	gate    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	sizes   []int
	alone   []string // the request of each Verify call
}

var _ connector.BatchVerifier = (*verifyMem)(nil)

func (v *verifyMem) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	rep, err := v.memTarget.Erase(ctx, s)
	if slices.Contains(s.Identities, v.late) {
		v.put(v.late, 1)
	}
	return rep, err
}

func (v *verifyMem) Verify(ctx context.Context, s connector.Subject) error {
	v.mu.Lock()
	v.alone = append(v.alone, s.RequestID)
	v.mu.Unlock()
	return v.memTarget.Verify(ctx, s)
}

func (v *verifyMem) VerifyBatch(ctx context.Context, subjects []connector.Subject) []error {
	v.mu.Lock()
	v.sizes = append(v.sizes, len(subjects))
	first := len(v.sizes) == 1
	v.mu.Unlock()
	if first {
		v.entered <- struct{}{}
		<-v.gate
	}
	out := make([]error, len(subjects))
	for i, s := range subjects {
		for _, id := range s.Identities {
			if n := v.held(id); n > 0 {
				out[i] = fmt.Errorf("%d rows left for %s", n, id.Value)
			}
		}
	}
	return out
}

// TestQueuedSubjectsVerifyInOneBatch: requests whose verification reaches
// a batch-capable target while a batch runs are verified together in the
// next one, and each gets its own answer: the one subject with a row left
// fails (and only it is verified again, by its verify job, which goes
// through the batcher as well), the others complete at once.
func TestQueuedSubjectsVerifyInOneBatch(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		const n, dirty = 5, 2
		target := &verifyMem{memTarget: newMemTarget(), late: subjectEmail(dirty),
			gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		for i := range n {
			target.put(subjectEmail(i), int64(i+1))
		}
		cfg := testConfig()
		cfg.MaxAttempts = 3
		p := start(t, st, cfg, Target{"t", target})

		ids := []string{submit(t, st, p, subjectEmail(0))}
		select {
		case <-target.entered:
		case <-time.After(waitTimeout):
			t.Fatal("the first verify batch never started")
		}
		for i := 1; i < n; i++ {
			ids = append(ids, submit(t, st, p, subjectEmail(i)))
		}
		waitQueued(t, p.verifiers["t"], n-1)
		close(target.gate)

		for i, id := range ids {
			if i == dirty {
				task := taskOf(t, waitDone(t, st, id, lethe.StatusFailed), "t")
				if task.State != lethe.TaskFailed || !strings.Contains(task.LastError, "rows left") {
					t.Errorf("subject %d: task %s, %q; want failed with the row left", i, task.State, task.LastError)
				}
				for j := range n {
					assertNoValue(t, "LastError", task.LastError, subjectEmail(j))
				}
				continue
			}
			task := taskOf(t, waitDone(t, st, id, lethe.StatusCompleted), "t")
			if got := task.Report.Total(); got != int64(i+1) {
				t.Errorf("subject %d: %d rows, want %d", i, got, i+1)
			}
		}
		target.mu.Lock()
		sizes, alone := slices.Clone(target.sizes), slices.Clone(target.alone)
		target.mu.Unlock()
		// Then the verify job verifies the failed subject again, through
		// the batcher too (with no other subject waiting, a batch of
		// one), up to MaxAttempts in all; a clean subject is never
		// verified again.
		want := []int{1, n - 1}
		for range cfg.MaxAttempts - 1 {
			want = append(want, 1)
		}
		if !slices.Equal(sizes, want) {
			t.Errorf("verify batch sizes = %v, want %v", sizes, want)
		}
		if len(alone) != 0 {
			t.Errorf("Verify called outside a batch for %v", alone)
		}
	})
}

// waitQueued waits until n calls wait behind a running batch or group.
func waitQueued(t *testing.T, g interface{ queued() int }, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for g.queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued behind the running batch, want %d", g.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
