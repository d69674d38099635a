package intake

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/pipeline"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// stmtCount counts the statements (BEGIN and COMMIT included) a store
// sends its database, and the commits (a testdb.Recorder).
type stmtCount struct {
	mu         sync.Mutex
	statements int
	commits    int
	log        []string
	quiet      bool // count without logging (benchmarks)
}

func (c *stmtCount) Record(_ any, query string, _ int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statements++
	if strings.EqualFold(strings.TrimSpace(query), "commit") {
		c.commits++
	}
	if !c.quiet {
		c.log = append(c.log, strings.Join(strings.Fields(query), " "))
	}
}

func (c *stmtCount) take() (statements, commits int, log []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	statements, commits, log = c.statements, c.commits, c.log
	c.statements, c.commits, c.log = 0, 0, nil
	return statements, commits, log
}

// countedStore opens a migrated store of dialect, River's tables
// included, whose every statement c counts.
func countedStore(tb testing.TB, dialect string, c *stmtCount) store.Store {
	tb.Helper()
	st, _ := testdb.CountedStore(tb, dialect, c)
	if err := pipeline.Migrate(context.Background(), st); err != nil {
		tb.Fatal(err)
	}
	return st
}

// budgetService is intake on a counted store, queueing through the real
// pipeline's River insert (not started: intake's cost only).
func budgetService(tb testing.TB, dialect string, c *stmtCount) *Service {
	tb.Helper()
	st := countedStore(tb, dialect, c)
	p, err := pipeline.New(pipeline.Config{}, st, nil, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return New(st, p, testdb.Keyring(tb), Config{})
}

// budgetSubmission is the i-th of a run of submissions of client c, one
// email each, every other one with an Idempotency-Key.
func budgetSubmission(client string, i int) Submission {
	sub := Submission{Actor: lethe.ActorClient, ClientID: client,
		Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: fmt.Sprintf("u%d@example.com", i)}}}
	if i%2 == 1 {
		sub.IdempotencyKey = fmt.Sprint("key-", i)
	}
	return sub
}

// commitTogether stores subs as one group commit (as if they had arrived
// while another batch committed) and returns their answers.
func commitTogether(tb testing.TB, s *Service, subs []Submission) []answer {
	tb.Helper()
	batch := make([]*pending, len(subs))
	for i, sub := range subs {
		r, err := s.build(sub)
		if err != nil {
			tb.Fatal(err)
		}
		batch[i] = &pending{ctx: context.Background(), r: r, done: make(chan answer, 1)}
	}
	s.commitBatch(context.Background(), batch)
	out := make([]answer, len(batch))
	for i, p := range batch {
		out[i] = <-p.done
	}
	return out
}

// Budgets of intake in lethe's store, River's job insert included: one
// submission alone (its transaction: the request and its identity, its
// first job, its received event), with and without an Idempotency-Key; a
// batch of budgetBatch new submissions arriving together, half of them
// with a key; and the same batch again, every one answered from what is
// stored (a replay or a duplicate). River inserts a notification of new
// jobs with some inserts and not others (it spaces them), so the budgets
// are what was measured with one.
//
// Measured before a batch's duplicate and idempotency lookups gave way to
// one insert that the unique indexes refuse: alone 8 statements, 9 with
// a key (a lookup each, then the request, its identity, the job, River's
// notification, the event, begin and commit); the batch 61; the batch
// again 18 (a lookup per submission); then the batch 22, with an
// identity insert per request, before the batch's identities went in one.
const budgetBatch = 16

var intakeBudgets = map[string]struct{ alone, aloneKeyed, batch, again int }{
	"sqlite":   {alone: 7, aloneKeyed: 7, batch: 7, again: 4},
	"postgres": {alone: 7, aloneKeyed: 7, batch: 7, again: 4},
}

func TestIntakeStatementBudget(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialectName(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		var c stmtCount
		s := budgetService(t, dialect, &c)
		b := intakeBudgets[dialect]
		check := func(what string, budget int, wantCommits int) {
			t.Helper()
			n, commits, log := c.take()
			t.Logf("%s: %s: %d statements, %d commits", dialect, what, n, commits)
			if n > budget || commits != wantCommits {
				t.Errorf("%s cost %d statements and %d commits, over the budget of %d and %d:\n%s",
					what, n, commits, budget, wantCommits, strings.Join(log, "\n"))
			}
		}
		submit := func(i int) {
			t.Helper()
			if _, out, err := s.Submit(ctx, budgetSubmission("partner", i)); err != nil || out != Created {
				t.Fatalf("submit: %v %v", out, err)
			}
		}

		// River asks PostgreSQL's version on its first insert.
		submit(0)
		c.take()
		submit(2)
		check("one submission", b.alone, 1)
		submit(3)
		check("one submission with a key", b.aloneKeyed, 1)

		subs := make([]Submission, budgetBatch)
		for i := range subs {
			subs[i] = budgetSubmission("partner", 100+i)
		}
		first := commitTogether(t, s, subs)
		for i, a := range first {
			if a.err != nil || a.outcome != Created {
				t.Fatalf("batch submission %d: %v %v", i, a.outcome, a.err)
			}
		}
		check(fmt.Sprintf("a batch of %d", budgetBatch), b.batch, 1)

		for i, a := range commitTogether(t, s, subs) {
			want := Duplicate
			if subs[i].IdempotencyKey != "" {
				want = Replayed
			}
			if a.err != nil || a.outcome != want || a.got.ID != first[i].got.ID {
				t.Fatalf("batch submission %d again: %v %v, want %v of the first", i, a.outcome, a.err, want)
			}
		}
		check(fmt.Sprintf("the batch of %d again", budgetBatch), b.again, 1)
	})
}
