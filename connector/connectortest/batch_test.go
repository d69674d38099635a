package connectortest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// memoryBatch is the memory connector with EraseBatch: a subject at a
// time, as a correct implementation may do it, or with one deliberate
// defect (bug) the batch suite must notice.
type memoryBatch struct {
	*memory
	batchBug string
}

func (m *memoryBatch) EraseBatch(ctx context.Context, subs []connector.Subject) ([]lethe.Report, error) {
	seen := map[string]bool{}
	for _, s := range subs {
		if seen[s.RequestID] && m.batchBug != "accepts-repeats" {
			return nil, errors.New("a request id is listed twice")
		}
		seen[s.RequestID] = true
	}
	reps := make([]lethe.Report, len(subs))
	for i, s := range subs {
		if m.batchBug == "skips-last" && i == len(subs)-1 {
			continue
		}
		rep, err := m.Erase(ctx, s)
		if err != nil {
			return reps, err
		}
		reps[i] = rep
	}
	if m.batchBug == "reports-the-batch" {
		var sum lethe.Report
		for _, r := range reps {
			sum = addReport(sum, r)
		}
		for i := range reps {
			reps[i] = sum
		}
	}
	return reps, nil
}

// memoryBatchHarness seeds three subjects (owners s0, s1, s2), each with a
// user and two orders, next to one other person.
func memoryBatchHarness(bug string) BatchHarness {
	return BatchHarness{Setup: func(tb testing.TB) BatchFixture {
		m := &memoryBatch{memory: &memory{}, batchBug: bug}
		var f BatchFixture
		for i := range 3 {
			owner, id := fmt.Sprintf("s%d", i), fmt.Sprintf("u-batch-%d", 881+i)
			email := fmt.Sprintf("batch%d@example.com", i)
			m.users = append(m.users, memUser{id, email, fmt.Sprintf("+44791112345%d", i), owner})
			m.orders = append(m.orders, memOrder{id, "book", owner}, memOrder{id, "lamp", owner})
			f.Subjects = append(f.Subjects, connector.Subject{RequestID: "rb" + owner,
				Identities: []lethe.Identity{{Type: lethe.IdentityEmail, Value: email}}})
		}
		m.users = append(m.users, memUser{"u-other-772", "other@example.com", "+447911654321", "other"})
		m.orders = append(m.orders, memOrder{"u-other-772", "chair", "other"})
		f.Connector = m
		f.Snapshot = func(testing.TB) ([]string, string) {
			m.mu.Lock()
			defer m.mu.Unlock()
			mine := make([]strings.Builder, 3)
			var others strings.Builder
			pick := func(owner string) *strings.Builder {
				if i := slices.Index([]string{"s0", "s1", "s2"}, owner); i >= 0 {
					return &mine[i]
				}
				return &others
			}
			for _, u := range m.users {
				fmt.Fprintf(pick(u.owner), "user %s %s %s\n", u.id, u.email, u.phone)
			}
			for _, x := range m.orders {
				fmt.Fprintf(pick(x.owner), "order %s %s\n", x.userID, x.item)
			}
			out := make([]string, 3)
			for i := range mine {
				out[i] = mine[i].String()
			}
			return out, others.String()
		}
		f.Remaining = func(_ testing.TB, i int) int64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			owner := fmt.Sprintf("s%d", i)
			var n int64
			for _, u := range m.users {
				if u.owner == owner {
					n++
				}
			}
			for _, x := range m.orders {
				if x.owner == owner {
					n++
				}
			}
			return n
		}
		return f
	}}
}

func TestMemoryBatchEraser(t *testing.T) {
	ExerciseBatch(t, memoryBatchHarness(""))
}

func TestBatchSuiteCatchesBrokenBatchErasers(t *testing.T) {
	for _, tc := range []struct{ bug, want string }{
		{"reports-the-batch", "Batch/EachSubjectExact"},
		{"skips-last", "Batch/EachSubjectExact"},
		{"accepts-repeats", "Batch/RepeatedRequest"},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			var failed []string
			exerciseBatch(memoryBatchHarness(tc.bug), func(name string, check func(tb testing.TB)) {
				r := &recorder{TB: t}
				done := make(chan struct{})
				go func() {
					defer close(done)
					check(r)
				}()
				<-done
				if r.Failed() {
					failed = append(failed, name)
				}
			})
			if !slices.Contains(failed, tc.want) {
				t.Errorf("bug %q: check %s did not fail (failed: %v)", tc.bug, tc.want, failed)
			}
		})
	}
}
