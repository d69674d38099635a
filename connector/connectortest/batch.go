package connectortest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// BatchHarness tells the batch suite (ExerciseBatch) how to get a fresh
// system holding several subjects' data, for connectors that implement
// connector.BatchEraser.
type BatchHarness struct {
	// Setup prepares a fresh system, like Harness.Setup, holding the data
	// of every subject of the fixture and of other people.
	Setup func(tb testing.TB) BatchFixture
}

// BatchFixture is one prepared system for the batch suite.
type BatchFixture struct {
	// Connector must implement connector.BatchEraser.
	Connector connector.Connector
	// Subjects are at least three subjects, each with its own RequestID
	// and the identities a request would give; the suite adds what
	// Resolve finds. Their data must not overlap, so that each subject's
	// report can be compared with its own Plan.
	Subjects []connector.Subject
	// Snapshot dumps the system: one string per subject (in the order of
	// Subjects) and one for everyone else, compared only for equality.
	Snapshot func(tb testing.TB) (subjects []string, others string)
	// Remaining counts the records of Subjects[i] that still identify
	// them, computed independently of the connector.
	Remaining func(tb testing.TB, i int) int64
}

// ExerciseBatch runs the batch checks as subtests of t: one EraseBatch
// reports each subject's rows exactly (as its own Plan, and as the
// target's ledger when the connector keeps one), erases every subject and
// nobody else, is idempotent per subject, finishes a batch some of whose
// subjects were erased already, refuses a repeated request id, and honours
// cancellation without leaking identity values.
func ExerciseBatch(t *testing.T, h BatchHarness) {
	t.Helper()
	exerciseBatch(h, func(name string, check func(tb testing.TB)) {
		t.Run(name, func(t *testing.T) { check(t) })
	})
}

// exerciseBatch is ExerciseBatch over an abstract subtest runner, as
// exercise is for Exercise.
func exerciseBatch(h BatchHarness, run func(name string, check func(tb testing.TB))) {
	for _, c := range batchChecks {
		run("Batch/"+c.name, func(tb testing.TB) {
			f := &batchFixture{BatchFixture: h.Setup(tb)}
			if _, ok := f.Connector.(connector.BatchEraser); !ok {
				tb.Fatalf("the connector does not implement connector.BatchEraser")
			}
			if len(f.Subjects) < 3 || f.Snapshot == nil || f.Remaining == nil {
				tb.Fatalf("BatchHarness.Setup must return at least three Subjects, a Snapshot and Remaining")
			}
			c.fn(tb, f)
		})
	}
}

var batchChecks = []struct {
	name string
	fn   func(tb testing.TB, f *batchFixture)
}{
	{"EachSubjectExact", checkBatchExact},
	{"Idempotent", checkBatchIdempotent},
	{"PartlyErased", checkBatchPartlyErased},
	{"RepeatedRequest", checkBatchRepeated},
	{"Canceled", checkBatchCanceled},
}

type batchFixture struct {
	BatchFixture
	subs []connector.Subject // resolved
	leak fixture             // remembers values for noLeak
}

// resolved returns the subjects with what Resolve finds, as the pipeline
// hands them to Erase.
func (f *batchFixture) resolved(tb testing.TB) []connector.Subject {
	tb.Helper()
	if f.subs != nil {
		return f.subs
	}
	for _, s := range f.Subjects {
		one := &fixture{Fixture: Fixture{Connector: f.Connector, Subject: s}}
		f.subs = append(f.subs, one.subject(tb))
		f.leak.values = append(f.leak.values, one.values...)
	}
	return f.subs
}

func (f *batchFixture) eraseBatch(ctx context.Context, subs []connector.Subject) ([]lethe.Report, error) {
	return f.Connector.(connector.BatchEraser).EraseBatch(ctx, subs)
}

func checkBatchExact(tb testing.TB, f *batchFixture) {
	subs := f.resolved(tb)
	plans := make([]string, len(subs))
	for i, s := range subs {
		plan, err := f.Connector.Plan(bg(), s)
		if err != nil {
			tb.Fatalf("Plan of subject %d: %v", i, err)
		}
		if changed(plan) == 0 {
			tb.Fatalf("the harness seeded nothing to erase for subject %d", i)
		}
		plans[i] = items(plan)
	}
	_, others := f.Snapshot(tb)
	reps, err := f.eraseBatch(bg(), subs)
	f.leak.noLeak(tb, "EraseBatch", err)
	if err != nil {
		tb.Fatalf("EraseBatch: %v", err)
	}
	if len(reps) != len(subs) {
		tb.Fatalf("EraseBatch returned %d reports for %d subjects", len(reps), len(subs))
	}
	for i, s := range subs {
		if got := items(reps[i]); got != plans[i] {
			tb.Errorf("subject %d: the batch reports\n  %s\nits own Plan said\n  %s", i, got, plans[i])
		}
		if n := f.Remaining(tb, i); n != 0 {
			tb.Errorf("subject %d: %d records still identify them after EraseBatch", i, n)
		}
		if err := f.Connector.Verify(bg(), s); err != nil {
			f.leak.noLeak(tb, "Verify", err)
			tb.Errorf("subject %d: Verify after EraseBatch: %v", i, err)
		}
		if l, ok := f.Connector.(connector.Ledger); ok {
			rep, err := l.Changed(bg(), s)
			if err != nil {
				tb.Fatalf("Changed of subject %d: %v", i, err)
			}
			if got := items(rep); got != items(reps[i]) {
				tb.Errorf("subject %d: the ledger says\n  %s\nthe batch reported\n  %s", i, got, items(reps[i]))
			}
		}
	}
	if _, o2 := f.Snapshot(tb); o2 != others {
		tb.Errorf("EraseBatch changed other people's data")
	}
}

func checkBatchIdempotent(tb testing.TB, f *batchFixture) {
	subs := f.resolved(tb)
	if _, err := f.eraseBatch(bg(), subs); err != nil {
		tb.Fatalf("EraseBatch: %v", err)
	}
	mine, others := f.Snapshot(tb)
	reps, err := f.eraseBatch(bg(), subs)
	f.leak.noLeak(tb, "second EraseBatch", err)
	if err != nil {
		tb.Fatalf("second EraseBatch: %v", err)
	}
	for i := range subs {
		if n := changed(reps[i]); n != 0 {
			tb.Errorf("subject %d: the second EraseBatch reports %d rows changed, want 0: %s", i, n, items(reps[i]))
		}
	}
	if m2, o2 := f.Snapshot(tb); !slices.Equal(m2, mine) || o2 != others {
		tb.Errorf("the second EraseBatch changed the system")
	}
}

// checkBatchPartlyErased erases the middle subject alone first, as a
// retry after a single Erase would find it: the batch then reports zero
// for it and exactly the others' rows.
func checkBatchPartlyErased(tb testing.TB, f *batchFixture) {
	subs := f.resolved(tb)
	plans := make([]string, len(subs))
	for i, s := range subs {
		plan, err := f.Connector.Plan(bg(), s)
		if err != nil {
			tb.Fatalf("Plan of subject %d: %v", i, err)
		}
		plans[i] = items(plan)
	}
	mid := len(subs) / 2
	first, err := f.Connector.Erase(bg(), subs[mid])
	if err != nil {
		tb.Fatalf("Erase of subject %d: %v", mid, err)
	}
	reps, err := f.eraseBatch(bg(), subs)
	f.leak.noLeak(tb, "EraseBatch", err)
	if err != nil {
		tb.Fatalf("EraseBatch: %v", err)
	}
	for i := range subs {
		switch {
		case i == mid:
			if n := changed(reps[i]); n != 0 {
				tb.Errorf("subject %d, erased before: the batch reports %d rows changed, want 0", i, n)
			}
			if got := items(first); got != plans[i] {
				tb.Errorf("subject %d: Erase reported\n  %s\nits Plan said\n  %s", i, got, plans[i])
			}
		default:
			if got := items(reps[i]); got != plans[i] {
				tb.Errorf("subject %d: the batch reports\n  %s\nits own Plan said\n  %s", i, got, plans[i])
			}
		}
		if n := f.Remaining(tb, i); n != 0 {
			tb.Errorf("subject %d: %d records remain", i, n)
		}
	}
}

func checkBatchRepeated(tb testing.TB, f *batchFixture) {
	subs := f.resolved(tb)
	mine, others := f.Snapshot(tb)
	_, err := f.eraseBatch(bg(), []connector.Subject{subs[0], subs[1], subs[0]})
	f.leak.noLeak(tb, "EraseBatch", err)
	if err == nil {
		tb.Errorf("EraseBatch accepted a request id listed twice")
	}
	if m2, o2 := f.Snapshot(tb); !slices.Equal(m2, mine) || o2 != others {
		tb.Errorf("a refused EraseBatch changed the system")
	}
}

func checkBatchCanceled(tb testing.TB, f *batchFixture) {
	subs := f.resolved(tb)
	mine, others := f.Snapshot(tb)
	ctx, cancel := context.WithCancel(bg())
	cancel()
	_, err := f.eraseBatch(ctx, subs)
	f.leak.noLeak(tb, "EraseBatch", err)
	if !errors.Is(err, context.Canceled) {
		tb.Errorf("EraseBatch with a canceled context: got %v, want an error wrapping context.Canceled", err)
	}
	if m2, o2 := f.Snapshot(tb); !slices.Equal(m2, mine) || o2 != others {
		tb.Errorf("EraseBatch with a canceled context changed the system")
	}
}
