package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// groupRun queues one inTx call per key behind a first call that holds
// the group's lead until every other call has queued, then lets them all
// run. fn is each call's work; it returns each call's error and the
// transaction (by address) each run of its fn saw, in order.
func groupRun(t *testing.T, g *txGroup, keys []string, fn func(i int, tx store.Tx) error) ([]error, [][]string) {
	t.Helper()
	errs := make([]error, len(keys))
	txs := make([][]string, len(keys))
	var mu sync.Mutex
	gate, entered := make(chan struct{}), make(chan struct{})
	call := func(i int) {
		errs[i] = g.inTx(context.Background(), keys[i], nil, func(tx store.Tx) error {
			mu.Lock()
			txs[i] = append(txs[i], fmt.Sprintf("%p", tx))
			mu.Unlock()
			if i == 0 {
				close(entered)
				<-gate
			}
			return fn(i, tx)
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() { call(0) })
	<-entered
	// One at a time, so they queue in the order of keys.
	for i := 1; i < len(keys); i++ {
		wg.Go(func() { call(i) })
		waitQueued(t, g, i)
	}
	close(gate)
	wg.Wait()
	return errs, txs
}

// groupEvent appends a test event to request id's chain in tx.
func groupEvent(ctx context.Context, tx store.Tx, id string, n int) error {
	return tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: id, Type: "test.grouped", Actor: "system",
		Time: time.Now(), Details: map[string]string{"n": fmt.Sprint(n)}})
}

// checkChains checks that each request's chain verifies and holds the
// test events want[id] (their "n" details, in order).
func checkChains(t *testing.T, st store.Store, want map[string][]string) {
	t.Helper()
	for id, ns := range want {
		events, err := st.ListAudit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p := audit.VerifyChain(id, events); p != nil {
			t.Errorf("request %s: chain broken: %v", id, p)
		}
		var got []string
		for _, e := range events {
			if e.Type == "test.grouped" {
				got = append(got, e.Details["n"])
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(ns) {
			t.Errorf("request %s: test events %v, want %v", id, got, ns)
		}
	}
}

// TestTxGroupSharesOneTransaction: calls queued while a group runs share
// the next group's transaction, one per request (a second call of a
// request waits for the group after), and each call's writes commit once,
// on chains that already had events (their heads read for the group).
func TestTxGroupSharesOneTransaction(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		p := build(t, st, testConfig())
		var ids []string
		want := map[string][]string{}
		for i := range 5 {
			id := submit(t, st, p, subjectEmail(i))
			ids = append(ids, id)
			if err := st.InTx(ctx, func(tx store.Tx) error { return groupEvent(ctx, tx, id, -1) }); err != nil {
				t.Fatal(err)
			}
			want[id] = []string{"-1"}
		}
		// The first call leads alone; the others queue: ids[1..4], then
		// ids[1] again, which must not join the group that holds ids[1].
		keys := append(append([]string(nil), ids...), ids[1])
		errs, txs := groupRun(t, newTxGroup(st, 10, nil), keys, func(i int, tx store.Tx) error {
			return groupEvent(ctx, tx, keys[i], i)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if len(txs[i]) != 1 {
				t.Errorf("call %d ran %d times, want once", i, len(txs[i]))
			}
			want[keys[i]] = append(want[keys[i]], fmt.Sprint(i))
		}
		if txs[0][0] == txs[1][0] {
			t.Error("the leader's call shared the transaction of calls queued behind it")
		}
		for i := 2; i < len(ids); i++ {
			if txs[i][0] != txs[1][0] {
				t.Errorf("queued call %d ran in a transaction of its own", i)
			}
		}
		if txs[5][0] == txs[1][0] {
			t.Error("two calls of one request shared a group")
		}
		checkChains(t, st, want)
	})
}

// TestTxGroupMemberFailsAlone: a member whose work fails rolls its group
// back; every member then runs alone, so the failing one gets its own
// error and commits nothing, and the others commit their work once.
func TestTxGroupMemberFailsAlone(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		p := build(t, st, testConfig())
		var keys []string
		want := map[string][]string{}
		for i := range 5 {
			keys = append(keys, submit(t, st, p, subjectEmail(i)))
		}
		boom := errors.New("member 3 fails")
		errs, txs := groupRun(t, newTxGroup(st, 10, nil), keys, func(i int, tx store.Tx) error {
			if err := groupEvent(ctx, tx, keys[i], i); err != nil {
				return err
			}
			if i == 3 {
				return boom
			}
			return nil
		})
		for i, err := range errs {
			switch {
			case i == 3 && !errors.Is(err, boom):
				t.Errorf("the failing member got %v, want its own error", err)
			case i != 3 && err != nil:
				t.Errorf("member %d got %v, want nil", i, err)
			}
			if i != 3 {
				want[keys[i]] = []string{fmt.Sprint(i)}
			} else {
				want[keys[i]] = nil
			}
		}
		// The group runs its members in request order and stops at the
		// failing one: it and those before it ran in the group, then alone.
		own := map[string]int{}
		for i := 1; i < len(keys); i++ {
			own[txs[i][len(txs[i])-1]]++
			runs := 1
			if keys[i] <= keys[3] {
				runs = 2
			}
			if len(txs[i]) != runs {
				t.Errorf("member %d ran %d times, want %d", i, len(txs[i]), runs)
			}
		}
		if len(own) != len(keys)-1 {
			t.Errorf("after the group failed, its members ran in %d transactions, want one each", len(own))
		}
		checkChains(t, st, want)
	})
}

// TestTxGroupStatementBudget counts what five requests' transactions, each
// appending to its request's audit chain, cost alone and as one group:
// the group shares the commit, the chains' locks and heads (two
// statements for all five, one on SQLite, which has no lock) and the
// audit INSERT.
func TestTxGroupStatementBudget(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			c := &tally{}
			st, _ := countedStore(t, dialect, c)
			p := build(t, st, testConfig())
			ids := make([]string, 10)
			for i := range ids {
				id := submit(t, st, p, subjectEmail(i))
				ids[i] = id
				if err := st.InTx(ctx, func(tx store.Tx) error { return groupEvent(ctx, tx, id, -1) }); err != nil {
					t.Fatal(err)
				}
			}
			c.reset()
			for _, id := range ids[:5] {
				if err := st.InTx(ctx, func(tx store.Tx) error { return groupEvent(ctx, tx, id, 0) }); err != nil {
					t.Fatal(err)
				}
			}
			aloneStatements, aloneCommits, _ := c.stop()

			c.reset()
			g := newTxGroup(st, 10, nil)
			var members []*groupCall
			for _, id := range ids[5:] {
				members = append(members, &groupCall{ctx: ctx, key: id, fn: func(tx store.Tx) error { return groupEvent(ctx, tx, id, 0) }})
			}
			g.run(members)
			for _, m := range members {
				if m.err != nil {
					t.Fatal(m.err)
				}
			}
			statements, commits, log := c.stop()
			want := map[string]int{"sqlite": 4, "postgres": 5}[dialect] // begin, heads (and locks), INSERT, commit
			t.Logf("%s: five alone %d statements, %d commits; as a group %d, %d", dialect, aloneStatements, aloneCommits, statements, commits)
			if statements > want || commits != 1 {
				t.Errorf("a group of five cost %d statements and %d commits, want at most %d and 1:\n%s",
					statements, commits, want, strings.Join(log, "\n"))
			}
			if aloneCommits != 5 || aloneStatements < 5*(want-1) {
				t.Errorf("five alone cost %d statements and %d commits: the comparison is off", aloneStatements, aloneCommits)
			}
		})
	}
}
