package intake

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// txCounter is a real store that counts the transactions it begins.
type txCounter struct {
	store.Store
	n atomic.Int64
}

func (c *txCounter) InTx(ctx context.Context, fn func(store.Tx) error) error {
	c.n.Add(1)
	return c.Store.InTx(ctx, fn)
}

// gatedQueue holds the first transaction open until release is closed, so
// that the submissions arriving meanwhile queue up behind it, and fails
// the enqueue of the requests whose subject is in failOnce, once each.
type gatedQueue struct {
	first    sync.Once
	entered  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	failOnce map[string]bool // request ids
	calls    map[string]int
}

func (q *gatedQueue) EnqueueResolve(_ context.Context, _ store.Tx, id string) error {
	q.first.Do(func() {
		close(q.entered)
		<-q.release
	})
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls[id]++
	if q.failOnce[id] {
		delete(q.failOnce, id)
		return errors.New("enqueue failed (injected)")
	}
	return nil
}

type result struct {
	r       *lethe.Request
	outcome Outcome
	err     error
}

// TestGroupCommit: submissions that arrive while a transaction commits are
// stored together in the next one, each with its job and audit event;
// within the batch a repeated subject is answered as a duplicate, a reused
// idempotency key with other content as a conflict, and a submission whose
// job fails to enqueue is stored alone without failing the others.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		counter := &txCounter{Store: st}
		q := &gatedQueue{entered: make(chan struct{}), release: make(chan struct{}), failOnce: map[string]bool{}, calls: map[string]int{}}
		s := New(counter, q, testdb.Keyring(t), Config{})
		// One batch at a time, as on SQLite, so the test decides what
		// queues behind what.
		s.batch.leaders = 1

		// The failing submission's id is made by build; make it first and
		// store it through the batch path like any other.
		const n = 30
		subs := make([]Submission, n)
		for i := range subs {
			subs[i] = Submission{Actor: lethe.ActorClient, ClientID: "partner", Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("u", i)}}}
		}
		subs[1].IdempotencyKey = "k" // stored in the first batch
		dupOf, dup := 5, 6           // same subject
		subs[dup].Identities = subs[dupOf].Identities
		conflict := 7 // same key as 1, another subject
		subs[conflict].IdempotencyKey = "k"
		failing := 9

		built := make([]*lethe.Request, n)
		for i, sub := range subs {
			r, err := s.build(sub)
			if err != nil {
				t.Fatal(err)
			}
			built[i] = r
		}
		q.failOnce[built[failing].ID] = true

		results := make([]result, n)
		var wg sync.WaitGroup
		submit := func(i int) {
			wg.Go(func() {
				r, out, err := s.submitBatched(ctx, built[i])
				results[i] = result{r, out, err}
			})
		}
		// The first two make the first batch (the leader's, held open).
		submit(0)
		<-q.entered
		submit(1)
		waitQueued(t, s, 1)
		close(q.release)
		wg.Wait()
		// Now the first batch committed; the other 28 queue behind a held
		// one again.
		q.first = sync.Once{}
		q.entered, q.release = make(chan struct{}), make(chan struct{})
		before := counter.n.Load()
		submit(2)
		<-q.entered
		// One at a time, so the queue's order is the submissions' order
		// (the duplicate must queue after the request it duplicates).
		for i := 3; i < n; i++ {
			submit(i)
			waitQueued(t, s, i-2)
		}
		close(q.release)
		wg.Wait()

		for i, res := range results {
			switch i {
			case dup:
				if res.err != nil || res.outcome != Duplicate || res.r.ID != results[dupOf].r.ID {
					t.Errorf("same subject in one batch: %v %v, want a duplicate of %d", res.outcome, res.err, dupOf)
				}
			case conflict:
				var le *lethe.Error
				if !errors.As(res.err, &le) || le.Code != lethe.ECONFLICT {
					t.Errorf("reused idempotency key: %v, want a conflict", res.err)
				}
			default:
				if res.err != nil || res.outcome != Created || res.r.ID != built[i].ID {
					t.Errorf("submission %d: %v %v, want created", i, res.outcome, res.err)
				}
			}
		}
		// Held batch (2), the batch of 27 that hit the failing enqueue,
		// the failing one alone, the batch of 26 again.
		if got := counter.n.Load() - before; got != 4 {
			t.Errorf("28 submissions took %d transactions, want 4", got)
		}
		// Each created request is stored once, with one job and one
		// received event.
		for i, res := range results {
			if i == dup || i == conflict {
				continue
			}
			if _, err := st.GetRequest(ctx, res.r.ID, store.Scope{All: true}); err != nil {
				t.Errorf("request %d not stored: %v", i, err)
			}
		}
		list, _, err := st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 100})
		if err != nil || len(list) != n-2 {
			t.Fatalf("%d requests stored, want %d (%v)", len(list), n-2, err)
		}
		for i, r := range built {
			want := 1
			switch i {
			case dup, conflict:
				want = 0
			case failing:
				want = 2 // the rolled-back batch, then alone
			}
			if q.calls[r.ID] < want || (want == 0 && q.calls[r.ID] != 0) {
				t.Errorf("request %d enqueued %d times, want %d", i, q.calls[r.ID], want)
			}
			if want == 0 {
				continue
			}
			evs, err := st.ListAudit(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			received := 0
			for _, ev := range evs {
				if ev.Type == lethe.EventRequestReceived {
					received++
				}
			}
			if received != 1 {
				t.Errorf("request %d has %d received events, want 1", i, received)
			}
		}
	})
}

// A caller whose context ended before its batch began is answered with
// that and not stored.
func TestGroupCommitSkipsCanceled(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		q := &gatedQueue{entered: make(chan struct{}), release: make(chan struct{}), failOnce: map[string]bool{}, calls: map[string]int{}}
		s := New(st, q, testdb.Keyring(t), Config{})
		s.batch.leaders = 1
		sub := func(v string) *lethe.Request {
			r, err := s.build(Submission{Actor: lethe.ActorAdmin, Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: v}}})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		first, gone := sub("a"), sub("b")
		var wg sync.WaitGroup
		var firstErr error
		wg.Go(func() { _, _, firstErr = s.submitBatched(context.Background(), first) })
		<-q.entered
		ctx, cancel := context.WithCancel(context.Background())
		var goneErr error
		wg.Go(func() { _, _, goneErr = s.submitBatched(ctx, gone) })
		waitQueued(t, s, 1)
		cancel()
		close(q.release)
		wg.Wait()
		if firstErr != nil || !errors.Is(goneErr, context.Canceled) {
			t.Fatalf("first: %v; canceled: %v, want nil and context.Canceled", firstErr, goneErr)
		}
		if _, err := st.GetRequest(context.Background(), gone.ID, store.Scope{All: true}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("canceled submission stored: %v", err)
		}
	})
}

// waitQueued waits until n submissions wait behind the running batch.
func waitQueued(t *testing.T, s *Service, n int) {
	t.Helper()
	for {
		s.batch.mu.Lock()
		got := len(s.batch.queue)
		s.batch.mu.Unlock()
		if got == n {
			return
		}
		if got > n {
			t.Fatalf("%d submissions queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Several batches at once (as on PostgreSQL), many submitters: every one
// is answered, once, and stored. A handoff that reached a submitter twice
// would leave it, or its batch, waiting forever.
func TestGroupCommitSeveralLeaders(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		s := New(st, &gatedQueue{entered: make(chan struct{}), release: make(chan struct{}), failOnce: map[string]bool{}, calls: map[string]int{}}, testdb.Keyring(t), Config{MaxBatch: 4})
		close(s.queue.(*gatedQueue).release)
		s.batch.leaders = 4
		const n = 200
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				_, out, err := s.Submit(ctx, Submission{Actor: lethe.ActorAdmin, Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("many-", i)}}})
				if err == nil && out != Created {
					err = fmt.Errorf("outcome %v, want created", out)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("submission %d: %v", i, err)
			}
		}
		list, _, err := st.ListRequests(context.Background(), store.ListFilter{Scope: store.Scope{All: true}, Limit: 1000})
		if err != nil || len(list) != n {
			t.Fatalf("%d requests stored, want %d (%v)", len(list), n, err)
		}
	})
}

// manyQueue is a gatedQueue that also inserts a batch's jobs at once
// (ManyEnqueuer), recording each call's ids, and fails its first such
// call when failShared is set.
type manyQueue struct {
	*gatedQueue
	failShared bool
	batches    [][]string
}

func (q *manyQueue) EnqueueResolves(ctx context.Context, tx store.Tx, ids []string) error {
	if len(ids) == 1 {
		// A batch of one goes through the gate like any enqueue.
		if err := q.EnqueueResolve(ctx, tx, ids[0]); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.batches = append(q.batches, slices.Clone(ids))
	if len(ids) == 1 {
		return nil
	}
	for _, id := range ids {
		q.calls[id]++
	}
	if q.failShared {
		q.failShared = false
		return errors.New("batch enqueue failed (injected)")
	}
	return nil
}

// With a queue that inserts many jobs at once, a batch's jobs are one
// insert; when that shared insert fails, no submission is to blame, and
// each is stored alone, once, with its job and received event.
func TestGroupCommitManyEnqueuer(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			t.Parallel()
			testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
				ctx := context.Background()
				q := &manyQueue{gatedQueue: &gatedQueue{entered: make(chan struct{}), release: make(chan struct{}), failOnce: map[string]bool{}, calls: map[string]int{}}, failShared: fail}
				s := New(st, q, testdb.Keyring(t), Config{})
				s.batch.leaders = 1
				const n = 6
				built := make([]*lethe.Request, n)
				for i := range built {
					r, err := s.build(Submission{Actor: lethe.ActorClient, ClientID: "partner", Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("m", i)}}})
					if err != nil {
						t.Fatal(err)
					}
					built[i] = r
				}
				results := make([]result, n)
				var wg sync.WaitGroup
				submit := func(i int) {
					wg.Go(func() {
						r, out, err := s.submitBatched(ctx, built[i])
						results[i] = result{r, out, err}
					})
				}
				// The first submission's batch is held open at its enqueue
				// while the others queue behind it; they make one batch.
				submit(0)
				<-q.entered
				for i := 1; i < n; i++ {
					submit(i)
				}
				waitQueued(t, s, n-1)
				close(q.release)
				wg.Wait()
				for i, res := range results {
					if res.err != nil || res.outcome != Created || res.r.ID != built[i].ID {
						t.Fatalf("submission %d: %v %v, want created", i, res.outcome, res.err)
					}
					evs, err := st.ListAudit(ctx, res.r.ID)
					if err != nil || len(evs) != 1 || evs[0].Type != lethe.EventRequestReceived {
						t.Fatalf("request %d: audit %v (%v), want one received event", i, evs, err)
					}
				}
				q.mu.Lock()
				defer q.mu.Unlock()
				// The held batch of one, then the other five at once; after
				// a failed shared insert, each of the five alone.
				// (Submissions 1-5 queue in the order they arrive.)
				got := slices.Clone(q.batches)
				for _, b := range got {
					slices.Sort(b)
				}
				want := [][]string{{built[0].ID}, sortedIDs(built[1:])}
				if fail {
					slices.SortFunc(got[2:], func(a, b []string) int { return slices.Compare(a, b) })
					for _, id := range sortedIDs(built[1:]) {
						want = append(want, []string{id})
					}
				}
				if !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("job inserts %v, want %v", got, want)
				}
				for i, r := range built {
					want := 1
					if fail && i > 0 {
						want = 2 // the failed batch insert, then alone
					}
					if q.calls[r.ID] != want {
						t.Errorf("request %d enqueued %d times, want %d", i, q.calls[r.ID], want)
					}
				}
				list, _, err := st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 100})
				if err != nil || len(list) != n {
					t.Fatalf("%d requests stored, want %d (%v)", len(list), n, err)
				}
			})
		})
	}
}

func sortedIDs(rs []*lethe.Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out
}

type nopQueue struct{}

func (nopQueue) EnqueueResolve(context.Context, store.Tx, string) error { return nil }

// plainTx hides the store's batch insert (indexedTx) from intake, so a
// batch is stored one submission after another (storeIn).
type plainTx struct{ store.Tx }

type plainStore struct{ store.Store }

func (s plainStore) InTx(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.InTx(ctx, func(tx store.Tx) error { return fn(plainTx{tx}) })
}

// TestGroupCommitAnswersAsOneByOne: a batch stored by one insert that the
// unique indexes refuse gives every submission the answer it gets when
// the same submissions are stored one after another in a transaction
// (storeIn's lookups): duplicates and replays of requests stored before
// and earlier in the batch, reused keys, closed requests that no longer
// stand for their subject, several clients.
func TestGroupCommitAnswersAsOneByOne(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialectName(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		batched := testdb.OpenStore(t, dialect)
		if _, ok := any(&plainTx{}).(indexedTx); ok {
			t.Fatal("plainTx must hide the batch insert")
		}
		var one store.Store = plainStore{testdb.OpenStore(t, dialect)}
		kr := testdb.Keyring(t)
		sb := New(batched, nopQueue{}, kr, Config{})
		so := New(one, nopQueue{}, kr, Config{})

		rnd := rand.New(rand.NewPCG(1, 2))
		sub := func() Submission {
			s := Submission{Actor: lethe.ActorClient, ClientID: fmt.Sprint("c", rnd.IntN(2)),
				Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("u", rnd.IntN(6))}}}
			if rnd.IntN(2) == 0 {
				s.IdempotencyKey = fmt.Sprint("k", rnd.IntN(6))
			}
			if rnd.IntN(4) == 0 {
				s.ExternalID = fmt.Sprint("x", rnd.IntN(2))
			}
			return s
		}
		clone := func(r *lethe.Request) *lethe.Request {
			c := *r
			c.Identities = slices.Clone(r.Identities)
			return &c
		}
		for round := range 6 {
			subs := make([]Submission, 24)
			for i := range subs {
				subs[i] = sub()
			}
			var bb, ob []*pending
			for _, sub := range subs {
				r, err := sb.build(sub)
				if err != nil {
					t.Fatal(err)
				}
				bb = append(bb, &pending{ctx: ctx, r: r, done: make(chan answer, 1)})
				ob = append(ob, &pending{ctx: ctx, r: clone(r), done: make(chan answer, 1)})
			}
			sb.commitBatch(ctx, bb)
			// One by one, in one transaction, as a batch without the insert.
			so.commitBatch(ctx, ob)
			for i := range bb {
				got, want := <-bb[i].done, <-ob[i].done
				gotID, wantID := "", ""
				if got.got != nil {
					gotID = got.got.ID
				}
				if want.got != nil {
					wantID = want.got.ID
				}
				if got.outcome != want.outcome || gotID != wantID || lethe.ErrorCode(got.err) != lethe.ErrorCode(want.err) || (got.err == nil) != (want.err == nil) {
					t.Errorf("round %d, submission %d: %v %s %v; one by one: %v %s %v", round, i, got.outcome, gotID, got.err, want.outcome, wantID, want.err)
				}
			}
			// Close some open requests on both, so later rounds meet
			// closed ones.
			for _, st := range []store.Store{batched, one} {
				list, _, err := st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range list {
					if r.Status.Open() && r.ID[len(r.ID)-1]%3 == 0 {
						if _, err := st.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{r.Status}, To: lethe.StatusCompleted, ToStage: lethe.StageDone, At: time.Now()}); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	})
}

// TestGroupCommitConcurrentDuplicates: batches committing at once (as on
// PostgreSQL) that hold the same subjects and keys each wait for the
// other's insert and answer from what it stored: every submission of a
// subject gets the one request stored for it, and none fails.
func TestGroupCommitConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		s := New(st, nopQueue{}, testdb.Keyring(t), Config{MaxBatch: 8})
		s.batch.leaders = 4
		const subjects, each = 6, 12
		got := make([][]string, subjects)
		for i := range got {
			got[i] = make([]string, each)
		}
		var wg sync.WaitGroup
		for j := range each {
			for i := range subjects {
				wg.Go(func() {
					sub := Submission{Actor: lethe.ActorClient, ClientID: "partner",
						Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("u", i)}}}
					if j%2 == 0 {
						sub.IdempotencyKey = fmt.Sprint("k", i) // same key, same request
					}
					r, _, err := s.Submit(ctx, sub)
					if err != nil {
						t.Errorf("subject %d, submission %d: %v", i, j, err)
						return
					}
					got[i][j] = r.ID
				})
			}
		}
		wg.Wait()
		for i, ids := range got {
			for _, id := range ids {
				if id != ids[0] {
					t.Errorf("subject %d answered with %v, want one request", i, ids)
					break
				}
			}
		}
		list, _, err := st.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 100})
		if err != nil || len(list) != subjects {
			t.Fatalf("%d requests stored, want %d (%v)", len(list), subjects, err)
		}
	})
}
