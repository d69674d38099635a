package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/goleak"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait; generous because both databases run the
// whole suite in parallel, and modernc's SQLite is many times slower under
// -race (TestManyRequestsInParallel takes ~3s without it, up to a minute
// with it on a two-core machine).
const waitTimeout = 2 * time.Minute

// testConfig retries fast and polls often so that the suite runs in seconds.
func testConfig() Config {
	return Config{
		MaxAttempts:       5,
		BackoffBase:       10 * time.Millisecond,
		BackoffMax:        200 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		JobTimeout:        20 * time.Second,
	}
}

// eachDialect runs test on a fresh SQLite store and a fresh PostgreSQL
// schema: River's SQLite driver is young, so every behaviour is checked on
// both.
func eachDialect(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Helper()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		migratePipeline(t, st)
		test(t, st)
	})
}

// start builds and starts a pipeline on st, stopped at the end of the test.
func start(t *testing.T, st store.Store, cfg Config, targets ...Target) *Pipeline {
	t.Helper()
	p := build(t, st, cfg, targets...)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

func build(t *testing.T, st store.Store, cfg Config, targets ...Target) *Pipeline {
	t.Helper()
	p, err := New(cfg, st, targets, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var email = lethe.Identity{Type: lethe.IdentityEmail, Value: "ada.lovelace@example.com"}

// submit does what the intake does: the request and its first job commit
// in one transaction.
func submit(t testing.TB, st store.Store, p *Pipeline, ids ...lethe.Identity) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	r := &lethe.Request{
		ID:         uuid.Must(uuid.NewV7()).String(),
		Regulation: lethe.GDPR,
		Status:     lethe.StatusReceived,
		Stage:      lethe.StageResolve,
		Identities: ids,
		SubjectKey: randomHex(16),
		ReceivedAt: now,
		DueAt:      now.Add(lethe.DefaultDeadlines[lethe.GDPR]),
		UpdatedAt:  now,
	}
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		return p.EnqueueResolve(ctx, tx, r.ID)
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return r.ID
}

// waitDone waits until the request is terminal and checks its status.
func waitDone(t *testing.T, st store.Store, id string, want lethe.Status) *lethe.Request {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		r, err := st.GetRequest(context.Background(), id, store.Scope{All: true})
		if err != nil {
			t.Fatalf("get request: %v", err)
		}
		if r.Status.Terminal() {
			if r.Status != want {
				t.Fatalf("request %s ended %s, want %s; tasks: %+v", id, r.Status, want, r.Tasks)
			}
			if r.Stage != lethe.StageDone {
				t.Errorf("terminal request has stage %s, want %s", r.Stage, lethe.StageDone)
			}
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s still %s/%s after %s; tasks: %+v", id, r.Status, r.Stage, waitTimeout, r.Tasks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdle waits until River has no job left to run or running.
func waitIdle(t *testing.T, p *Pipeline) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := p.eng.countByState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := c[rivertype.JobStateAvailable] + c[rivertype.JobStateScheduled] + c[rivertype.JobStateRetryable] + c[rivertype.JobStateRunning]
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still queued after %s: %v", waitTimeout, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditTypes counts the request's audit events by type.
func auditTypes(t *testing.T, st store.Store, id string) map[string]int {
	t.Helper()
	events, err := st.ListAudit(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range events {
		n[string(e.Type)]++
	}
	return n
}

func taskOf(t *testing.T, r *lethe.Request, target string) lethe.Task {
	t.Helper()
	for _, task := range r.Tasks {
		if task.Target == target {
			return task
		}
	}
	t.Fatalf("request has no task for %s: %+v", target, r.Tasks)
	return lethe.Task{}
}

func TestZeroTargetsCompletes(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		p := start(t, st, testConfig())
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)
		if len(r.Tasks) != 0 {
			t.Errorf("tasks = %+v, want none", r.Tasks)
		}
		if r.StartedAt.IsZero() || r.CompletedAt.IsZero() {
			t.Errorf("StartedAt %v, CompletedAt %v: want both set", r.StartedAt, r.CompletedAt)
		}
		want := map[string]int{"request.running": 1, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, id)); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
	})
}

func TestRetriesThenCompletes(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		flaky, steady := newMemTarget(), newMemTarget()
		flaky.failErase = 2
		flaky.put(email, 3)
		steady.put(email, 2)
		obs := &recordingObserver{}
		p, err := New(testConfig(), st, []Target{{"flaky", flaky}, {"steady", steady}}, nil, obs)
		if err != nil {
			t.Fatal(err)
		}
		startBuilt(t, p)

		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)

		if got := taskOf(t, r, "flaky"); got.State != lethe.TaskDone || got.Attempts != 3 {
			t.Errorf("flaky task: state %s attempts %d, want done after 3", got.State, got.Attempts)
		}
		if got := taskOf(t, r, "steady"); got.State != lethe.TaskDone || got.Attempts != 1 {
			t.Errorf("steady task: state %s attempts %d, want done after 1", got.State, got.Attempts)
		}
		if got := taskOf(t, r, "flaky").Report.Total(); got != 3 {
			t.Errorf("flaky report rows = %d, want 3", got)
		}
		if flaky.held(email) != 0 || steady.held(email) != 0 {
			t.Error("data left in a target")
		}
		if n := flaky.count("erase"); n != 3 {
			t.Errorf("flaky Erase calls = %d, want 3", n)
		}
		want := map[string]int{"request.running": 1, "task.running": 4, "task.done": 2, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, id)); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
		waitIdle(t, p)
		// A step tells the observer after its transaction committed, so
		// the jobs can be idle a moment before it has.
		tasks, requests := obs.snapshot()
		for deadline := time.Now().Add(waitTimeout); len(requests) == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
			tasks, requests = obs.snapshot()
		}
		if diff := cmp.Diff([]string{"flaky:done:3", "steady:done:1"}, tasks); diff != "" {
			t.Errorf("observed tasks (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]lethe.Status{lethe.StatusCompleted}, requests); diff != "" {
			t.Errorf("observed requests (-want +got):\n%s", diff)
		}
	})
}

func startBuilt(t *testing.T, p *Pipeline) {
	t.Helper()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

type recordingObserver struct {
	mu       sync.Mutex
	tasks    []string
	requests []lethe.Status
}

func (o *recordingObserver) TaskFinished(target string, state lethe.TaskState, attempts int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tasks = append(o.tasks, fmt.Sprintf("%s:%s:%d", target, state, attempts))
}

func (o *recordingObserver) RequestFinished(s lethe.Status) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, s)
}

func (o *recordingObserver) snapshot() ([]string, []lethe.Status) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tasks := append([]string(nil), o.tasks...)
	// Targets finish in any order.
	if len(tasks) == 2 && tasks[0] > tasks[1] {
		tasks[0], tasks[1] = tasks[1], tasks[0]
	}
	return tasks, append([]lethe.Status(nil), o.requests...)
}

// assertNoValue fails if s holds the identity value in any letter case.
func assertNoValue(t *testing.T, what, s string, id lethe.Identity) {
	t.Helper()
	if strings.Contains(strings.ToLower(s), strings.ToLower(id.Value)) {
		t.Errorf("%s discloses the identity value: %q", what, s)
	}
}

func TestFailedTaskFailsRequestWithRedactedError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		setup        func(m *memTarget)
		wantAttempts int
	}{
		{
			name: "permanent",
			setup: func(m *memTarget) {
				m.eraseErr = connector.Permanent(fmt.Errorf("no table for subject %s", strings.ToUpper(email.Value)))
			},
			wantAttempts: 1,
		},
		{
			name:         "attempts exhausted",
			setup:        func(m *memTarget) { m.failErase = 1000 },
			wantAttempts: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachDialect(t, func(t *testing.T, st store.Store) {
				bad, good := newMemTarget(), newMemTarget()
				tc.setup(bad)
				cfg := testConfig()
				cfg.MaxAttempts = 3
				p := start(t, st, cfg, Target{"bad", bad}, Target{"good", good})

				id := submit(t, st, p, email)
				r := waitDone(t, st, id, lethe.StatusFailed)

				task := taskOf(t, r, "bad")
				if task.State != lethe.TaskFailed || task.Attempts != tc.wantAttempts {
					t.Errorf("bad task: state %s attempts %d, want failed after %d", task.State, task.Attempts, tc.wantAttempts)
				}
				if task.LastError == "" || !strings.Contains(task.LastError, redacted) {
					t.Errorf("LastError = %q, want the error with the value redacted", task.LastError)
				}
				assertNoValue(t, "LastError", task.LastError, email)
				if got := taskOf(t, r, "good"); got.State != lethe.TaskDone {
					t.Errorf("good task: state %s, want done", got.State)
				}

				events, err := st.ListAudit(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				var failedEvents, completed int
				for _, e := range events {
					for k, v := range e.Details {
						assertNoValue(t, "audit detail "+k, v, email)
					}
					switch e.Type {
					case "task.failed":
						failedEvents++
					case "request.failed":
						completed++
					}
				}
				if failedEvents != 1 || completed != 1 {
					t.Errorf("task.failed events %d, request.failed events %d: want 1 and 1", failedEvents, completed)
				}

				// River keeps the errors of failed attempts in its own
				// table, and its logs print them.
				waitIdle(t, p)
				for _, e := range riverJobErrors(t, st) {
					assertNoValue(t, "river job error", e, email)
				}
			})
		})
	}
}

// insertRaw inserts jobs by hand, without the unique options the pipeline
// uses, the way a bug, an operator or a replayed message could.
func insertRaw(t *testing.T, st store.Store, p *Pipeline, args ...river.JobArgs) {
	t.Helper()
	ctx := context.Background()
	jobs := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		jobs[i] = river.InsertManyParams{Args: a}
	}
	if err := st.InTx(ctx, func(tx store.Tx) error { return p.eng.insertTx(ctx, tx, jobs) }); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateJobsTakeEffectOnce(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		a, b := newMemTarget(), newMemTarget()
		a.put(email, 1)
		b.put(email, 1)
		p := build(t, st, testConfig(), Target{"a", a}, Target{"b", b})
		id := submit(t, st, p, email)
		// Duplicates queued before the pipeline runs: they race with the
		// originals once it starts.
		insertRaw(t, st, p,
			resolveArgs{RequestID: id}, resolveArgs{RequestID: id},
			eraseArgs{RequestID: id, Target: "a"},
			verifyArgs{RequestID: id}, finishArgs{RequestID: id})
		startBuilt(t, p)
		waitDone(t, st, id, lethe.StatusCompleted)
		waitIdle(t, p)

		// And duplicates of every step after the request ended.
		insertRaw(t, st, p,
			resolveArgs{RequestID: id},
			eraseArgs{RequestID: id, Target: "a"}, eraseArgs{RequestID: id, Target: "b"},
			verifyArgs{RequestID: id}, finishArgs{RequestID: id}, finishArgs{RequestID: id})
		waitIdle(t, p)

		r := waitDone(t, st, id, lethe.StatusCompleted)
		for _, task := range r.Tasks {
			if task.State != lethe.TaskDone {
				t.Errorf("task %s: state %s, want done", task.Target, task.State)
			}
		}
		got := auditTypes(t, st, id)
		// Every attempt is audited as it starts. The early duplicate of a's
		// erase job either runs beside the original (a second attempt,
		// harmless because Erase is idempotent) or after the task ended
		// (no attempt): so a has one or two, b exactly one.
		if n := got["task.running"]; n != 2 && n != 3 {
			t.Errorf("task.running events = %d, want 2 or 3", n)
		}
		delete(got, "task.running")
		want := map[string]int{"request.running": 1, "task.done": 2, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
		if n := b.count("erase"); n != 1 {
			t.Errorf("b Erase calls = %d, want 1 (its only duplicate came after the task ended)", n)
		}
	})
}

func TestUniqueJobsSkipDuplicateInserts(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		p := build(t, st, testConfig())
		id := submit(t, st, p, email)
		err := st.InTx(ctx, func(tx store.Tx) error { return p.EnqueueResolve(ctx, tx, id) })
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{kindResolve}, riverJobKinds(t, st)); diff != "" {
			t.Errorf("jobs (-want +got):\n%s", diff)
		}
		depth, err := p.QueueDepth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if depth != 1 {
			t.Errorf("QueueDepth = %d, want 1", depth)
		}
	})
}

func TestManyRequestsInParallel(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		const n = 100
		a, b := newMemTarget(), newMemTarget()
		ids := make([]lethe.Identity, n)
		for i := range ids {
			ids[i] = lethe.Identity{Type: lethe.IdentityEmail, Value: fmt.Sprintf("user%d@example.com", i)}
			a.put(ids[i], 1)
			b.put(ids[i], 2)
		}
		p := start(t, st, testConfig(), Target{"a", a}, Target{"b", b})

		reqs := make([]string, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 10) // ten clients submitting at once
		for i := range n {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				reqs[i] = submit(t, st, p, ids[i])
			})
		}
		wg.Wait()
		for _, id := range reqs {
			if id != "" {
				waitDone(t, st, id, lethe.StatusCompleted)
			}
		}
		for _, id := range ids {
			if a.held(id) != 0 || b.held(id) != 0 {
				t.Fatalf("data left for %s", id)
			}
		}
		if got := a.count("erase") + b.count("erase"); got != 2*n {
			t.Errorf("Erase calls = %d, want %d", got, 2*n)
		}
		// Requests ending together complete their jobs together
		// (txGroup): every job must end, none with an error.
		waitJobsFinalized(t, st)
		for _, e := range riverJobErrors(t, st) {
			if e != "" {
				t.Errorf("a job recorded errors: %s", e)
			}
		}
	})
}

func TestResolveReachesFixedPointAcrossTargets(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		userID := lethe.Identity{Type: lethe.IdentityUserID, Value: "42"}
		customer := lethe.Identity{Type: "x-customer", Value: "C-9"}
		// users finds user 42 by email; orders knows user 42 and links it
		// to a customer number, whose rows live in users again: three
		// rounds before nothing new turns up.
		users, orders := newMemTarget(), newMemTarget()
		users.links[email] = []lethe.Identity{userID}
		orders.links[userID] = []lethe.Identity{customer, userID}
		users.put(email, 1)
		users.put(customer, 4)
		orders.put(userID, 7)

		p := start(t, st, testConfig(), Target{"users", users}, Target{"orders", orders})
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)

		if users.held(customer) != 0 || orders.held(userID) != 0 || users.held(email) != 0 {
			t.Error("linked identities' data was not erased")
		}
		if got := taskOf(t, r, "orders").Report.Total(); got != 7 {
			t.Errorf("orders rows = %d, want 7", got)
		}
		if got := taskOf(t, r, "users").Report.Total(); got != 5 {
			t.Errorf("users rows = %d, want 5", got)
		}
		events, err := st.ListAudit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if events[0].Type != "request.running" || events[0].Details["linked_identities"] != "2" || events[0].Details["resolve_rounds"] != "3" {
			t.Errorf("first event = %s %v, want request.running with 2 linked identities after 3 rounds", events[0].Type, events[0].Details)
		}
	})
}

func TestCancelBeforeResolve(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		target := newMemTarget()
		p := build(t, st, testConfig(), Target{"t", target})
		id := submit(t, st, p, email)
		// What the API's cancel does: a compare-and-set from received.
		ok, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: id, From: []lethe.Status{lethe.StatusReceived}, To: lethe.StatusCanceled, ToStage: lethe.StageDone, At: time.Now()})
		if err != nil || !ok {
			t.Fatalf("cancel: ok %v err %v", ok, err)
		}
		startBuilt(t, p)
		waitIdle(t, p)

		r := waitDone(t, st, id, lethe.StatusCanceled)
		if len(r.Tasks) != 0 {
			t.Errorf("tasks = %+v, want none", r.Tasks)
		}
		if n := target.count("resolve"); n != 0 {
			t.Errorf("Resolve calls = %d, want 0", n)
		}
		if n := auditTypes(t, st, id)["request.running"]; n != 0 {
			t.Errorf("request.running events = %d, want 0", n)
		}
	})
}

func TestCancelAfterResolveIsRefused(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		p := start(t, st, testConfig(), Target{"t", newMemTarget()})
		id := submit(t, st, p, email)
		waitDone(t, st, id, lethe.StatusCompleted)
		ok, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: id, From: []lethe.Status{lethe.StatusReceived}, To: lethe.StatusCanceled, ToStage: lethe.StageDone, At: time.Now()})
		if err != nil || ok {
			t.Fatalf("cancel after resolve: ok %v err %v, want refused", ok, err)
		}
	})
}

func TestVerifyResidueFailsTask(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		sloppy := newMemTarget()
		sloppy.leaveResidue = true
		sloppy.put(email, 2)
		cfg := testConfig()
		cfg.MaxAttempts = 3
		p := start(t, st, cfg, Target{"sloppy", sloppy})
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusFailed)

		task := taskOf(t, r, "sloppy")
		if task.State != lethe.TaskFailed || !strings.Contains(task.LastError, "rows left") {
			t.Errorf("task: state %s LastError %q, want failed with the residue", task.State, task.LastError)
		}
		assertNoValue(t, "LastError", task.LastError, email)
		if n := sloppy.count("verify"); n != cfg.MaxAttempts {
			t.Errorf("Verify calls = %d, want %d (retried up to MaxAttempts)", n, cfg.MaxAttempts)
		}
		// The failed request keeps its identities sealed for a re-drive.
		want := map[string]int{"request.running": 1, "task.running": 1, "task.done": 1, "task.failed": 1, "request.verified": 1, "request.failed": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, id)); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
	})
}

func TestResolveFailureFailsRequest(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		broken := newMemTarget()
		broken.resolveErr = connector.Permanent(fmt.Errorf("lookup of %s: table users missing", email.Value))
		fine := newMemTarget()
		p := start(t, st, testConfig(), Target{"broken", broken}, Target{"fine", fine})
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusFailed)
		// Every target is listed: the one that failed with its redacted
		// error, the other skipped, as nothing may be erased without the
		// full identity set.
		if len(r.Tasks) != 2 {
			t.Fatalf("tasks = %+v, want both targets listed", r.Tasks)
		}
		if got := taskOf(t, r, "broken"); got.State != lethe.TaskFailed || !strings.Contains(got.LastError, "table users missing") {
			t.Errorf("broken task = %+v, want failed with the cause", got)
		}
		assertNoValue(t, "task error", taskOf(t, r, "broken").LastError, email)
		if got := taskOf(t, r, "fine"); got.State != lethe.TaskSkipped || got.Report.Total() != 0 {
			t.Errorf("fine task = %+v, want skipped with nothing erased", got)
		}
		if n := fine.count("erase"); n != 0 {
			t.Errorf("Erase calls on the fine target = %d, want 0", n)
		}
		events, err := st.ListAudit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		// The failed request keeps its identities sealed until it is
		// re-driven or closed (no signer, no receipt).
		if len(events) != 1 || events[0].Type != "request.failed" || events[0].Details["target"] != "broken" {
			t.Fatalf("events = %+v, want one request.failed naming the target", events)
		}
		if ids, err := st.RequestIdentities(context.Background(), id); err != nil || len(ids) != 1 {
			t.Errorf("identities kept by the failed request: %d, %v; want 1", len(ids), err)
		}
		assertNoValue(t, "audit error", events[0].Details["error"], email)
		if !strings.Contains(events[0].Details["error"], "table users missing") {
			t.Errorf("audit error = %q, want the cause", events[0].Details["error"])
		}
	})
}

// TestStopReleasesRunningJobs stops a pipeline while an erase hangs: Stop
// must return once its deadline passes, and another process must finish
// the request.
func TestStopReleasesRunningJobs(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		hung := newMemTarget()
		hung.block = true
		hung.entered = make(chan struct{}, 1)
		p1 := build(t, st, testConfig(), Target{"t", hung})
		if err := p1.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		id := submit(t, st, p1, email)
		select {
		case <-hung.entered:
		case <-time.After(waitTimeout):
			t.Fatal("erase never started")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		began := time.Now()
		if err := p1.Stop(ctx); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("Stop took %s", d)
		}

		fine := newMemTarget()
		fine.put(email, 1)
		start(t, st, testConfig(), Target{"t", fine})
		r := waitDone(t, st, id, lethe.StatusCompleted)
		if task := taskOf(t, r, "t"); task.Attempts != 2 {
			t.Errorf("attempts = %d, want 2 (the interrupted one and the one that finished)", task.Attempts)
		}
		if fine.held(email) != 0 {
			t.Error("data left")
		}
	})
}

// TestCrashedJobIsRescued leaves a job "running" as a process that died
// mid-job would, and checks that a new process rescues and finishes it.
func TestCrashedJobIsRescued(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := newMemTarget()
		target.put(email, 1)
		cfg := testConfig()
		cfg.JobTimeout = time.Second
		cfg.RescueStuckJobsAfter = 2 * time.Second
		p := build(t, st, cfg, Target{"t", target})
		id := submit(t, st, p, email)
		execSQL(t, st,
			`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = '2000-01-01 00:00:00.000', attempted_by = json('["dead-process"]')`,
			`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour', attempted_by = '{dead-process}'`)
		startBuilt(t, p)
		waitDone(t, st, id, lethe.StatusCompleted)
		if target.held(email) != 0 {
			t.Error("data left")
		}
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	got := Config{}.withDefaults()
	if got.Workers != 10 || got.MaxAttempts != 10 || got.BackoffBase != time.Second || got.BackoffMax != 10*time.Minute ||
		got.JobTimeout != 10*time.Minute || got.RescueStuckJobsAfter != 11*time.Minute || got.FetchPollInterval != 200*time.Millisecond {
		t.Errorf("defaults = %+v", got)
	}
	if err := got.validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative workers", Config{Workers: -1}, "Workers"},
		{"attempts over river's", Config{MaxAttempts: riverMaxAttempts}, "MaxAttempts"},
		{"max below base", Config{BackoffBase: time.Minute, BackoffMax: time.Second}, "BackoffMax"},
		{"rescue before timeout", Config{JobTimeout: time.Minute, RescueStuckJobsAfter: time.Second}, "RescueStuckJobsAfter"},
		{"tiny poll", Config{FetchPollInterval: time.Microsecond}, "FetchPollInterval"},
	} {
		err := tc.cfg.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s", tc.name, err, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	p := retryPolicy{base: time.Second, max: time.Minute}
	for _, tc := range []struct {
		attempt int
		full    time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {7, time.Minute}, {100, time.Minute}, {0, time.Second},
	} {
		for range 50 {
			d := p.delay(tc.attempt)
			if d < tc.full/2 || d > tc.full {
				t.Fatalf("delay(%d) = %s, want within [%s, %s]", tc.attempt, d, tc.full/2, tc.full)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	ids := []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: "ada@example.com"},
		{Type: lethe.IdentityPhone, Value: "+4915112345678"},
		{Type: lethe.IdentityUserID, Value: "ada"},
	}
	for _, tc := range []struct{ in, want string }{
		{"no row for ADA@Example.com", "no row for " + redacted},
		{"phone 4915112345678 and +4915112345678", "phone " + redacted + " and " + redacted},
		{"user ada not found", "user " + redacted + " not found"},
		{"timeout", "timeout"},
	} {
		got := redactString(tc.in, ids)
		if got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("x", 2*maxErrorLen) + "ada@example.com"
	if got := redactString(long, ids); len(got) > maxErrorLen+3 || strings.Contains(got, "ada") {
		t.Errorf("long message not cut or not scrubbed: %d bytes", len(got))
	}
	if got := redact(errors.New("ada"), nil); got != "ada" {
		t.Errorf("without identities: %q", got)
	}
}
