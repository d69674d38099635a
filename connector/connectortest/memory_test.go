package connectortest

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// memory is a tiny connector over two in-memory tables, users(id, email)
// and orders(user_id, item). bug selects one deliberate defect so the test
// can show the suite notices it.
type memory struct {
	mu     sync.Mutex
	users  []memUser
	orders []memOrder
	bug    string
}

type memUser struct{ id, email string }
type memOrder struct{ userID, item string }

var _ connector.Connector = (*memory)(nil)

func (m *memory) ids(s connector.Subject) map[string]bool {
	ids := map[string]bool{}
	for _, v := range s.Values(lethe.IdentityUserID) {
		ids[v] = true
	}
	for _, e := range s.Values(lethe.IdentityEmail) {
		for _, u := range m.users {
			if u.email == e {
				ids[u.id] = true
			}
		}
	}
	return ids
}

func (m *memory) Resolve(ctx context.Context, s connector.Subject) ([]lethe.Identity, error) {
	if err := m.ctxErr(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []lethe.Identity
	for id := range m.ids(s) {
		out = append(out, lethe.Identity{Type: lethe.IdentityUserID, Value: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out, nil
}

func (m *memory) count(s connector.Subject) (users, orders int64) {
	ids := m.ids(s)
	for _, u := range m.users {
		if ids[u.id] {
			users++
		}
	}
	for _, o := range m.orders {
		if ids[o.userID] {
			orders++
		}
	}
	return users, orders
}

func report(users, orders int64) lethe.Report {
	return lethe.Report{Items: []lethe.ReportItem{
		{Object: "orders", Action: lethe.ActionDelete, Rows: orders},
		{Object: "users", Action: lethe.ActionDelete, Rows: users},
	}}
}

func (m *memory) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := m.ctxErr(ctx); err != nil {
		return lethe.Report{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bug == "plan-mutates" && len(m.orders) > 0 {
		m.orders = m.orders[1:]
	}
	return report(m.count(s)), nil
}

func (m *memory) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := m.ctxErr(ctx); err != nil {
		return lethe.Report{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, o := m.count(s)
	ids := m.ids(s)
	if m.bug == "erase-not-idempotent" {
		u, o = 1, 1
	}
	if m.bug == "erase-too-much" {
		m.orders = nil
	}
	var users []memUser
	for _, x := range m.users {
		if !ids[x.id] {
			users = append(users, x)
		}
	}
	var orders []memOrder
	for _, x := range m.orders {
		if !ids[x.userID] {
			orders = append(orders, x)
		}
	}
	m.users, m.orders = users, orders
	return report(u, o), nil
}

func (m *memory) Verify(ctx context.Context, s connector.Subject) error {
	if err := m.ctxErr(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, o := m.count(s)
	if m.bug == "verify-always-passes" {
		return nil
	}
	if u+o > 0 {
		if m.bug == "leaky-errors" {
			return fmt.Errorf("memory: %d users and %d orders left for %v", u, o, s.Values(lethe.IdentityEmail))
		}
		return fmt.Errorf("memory: %d users and %d orders left", u, o)
	}
	return nil
}

func (m *memory) ctxErr(ctx context.Context) error {
	if m.bug == "ignores-ctx" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	return nil
}

func memoryHarness(bug string) Harness {
	return Harness{Setup: func(tb testing.TB) Fixture {
		m := &memory{
			bug: bug,
			users: []memUser{
				{"u-subject-771", "subject@example.com"},
				{"u-other-772", "other@example.com"},
			},
			orders: []memOrder{
				{"u-subject-771", "book"}, {"u-subject-771", "lamp"},
				{"u-other-772", "chair"},
			},
		}
		return Fixture{
			Connector: m,
			Subject: connector.Subject{RequestID: "r1", Identities: []lethe.Identity{
				{Type: lethe.IdentityEmail, Value: "subject@example.com"},
			}},
			Snapshot: func(testing.TB) (string, string) {
				m.mu.Lock()
				defer m.mu.Unlock()
				var s, o strings.Builder
				for _, u := range m.users {
					w := &o
					if u.id == "u-subject-771" {
						w = &s
					}
					fmt.Fprintf(w, "user %s %s\n", u.id, u.email)
				}
				for _, x := range m.orders {
					w := &o
					if x.userID == "u-subject-771" {
						w = &s
					}
					fmt.Fprintf(w, "order %s %s\n", x.userID, x.item)
				}
				return s.String(), o.String()
			},
			Remaining: func(testing.TB) int64 {
				m.mu.Lock()
				defer m.mu.Unlock()
				var n int64
				for _, u := range m.users {
					if u.id == "u-subject-771" {
						n++
					}
				}
				for _, x := range m.orders {
					if x.userID == "u-subject-771" {
						n++
					}
				}
				return n
			},
		}
	}}
}

func TestMemoryConnector(t *testing.T) {
	Exercise(t, memoryHarness(""))
}

// recorder is a testing.TB that records failures instead of failing the
// real test. Fatal ends the check's goroutine, as it does in testing.
type recorder struct {
	testing.TB // the real test: Cleanup, TempDir, Logf
	mu         sync.Mutex
	failures   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any)                 { r.Errorf("%s", fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...); runtime.Goexit() }
func (r *recorder) Fatal(args ...any)                 { r.Error(args...); runtime.Goexit() }
func (r *recorder) Fail()                             { r.Errorf("Fail called") }
func (r *recorder) FailNow()                          { r.Fail(); runtime.Goexit() }
func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failures) > 0
}

// failedChecks runs the suite with a recorder and returns the names of the
// checks that failed.
func failedChecks(t *testing.T, h Harness) []string {
	var failed []string
	exercise(h, func(name string, check func(tb testing.TB)) {
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			check(r)
		}()
		<-done
		if r.Failed() {
			failed = append(failed, name)
			t.Logf("%s: %s", name, strings.Join(r.failures, "; "))
		}
	})
	return failed
}

func TestSuiteCatchesBrokenConnectors(t *testing.T) {
	tests := []struct {
		bug  string
		want string // a check that must fail
	}{
		{"plan-mutates", "PlanChangesNothing"},
		{"erase-not-idempotent", "EraseIsIdempotent"},
		{"erase-too-much", "EraseLeavesOthersAlone"},
		{"verify-always-passes", "VerifyFailsBeforeErase"},
		{"leaky-errors", "VerifyFailsBeforeErase"},
		{"ignores-ctx", "CanceledContext"},
	}
	for _, tt := range tests {
		t.Run(tt.bug, func(t *testing.T) {
			failed := failedChecks(t, memoryHarness(tt.bug))
			found := false
			for _, f := range failed {
				found = found || f == tt.want
			}
			if !found {
				t.Errorf("suite did not fail %s for bug %q (failed: %v)", tt.want, tt.bug, failed)
			}
		})
	}
	if failed := failedChecks(t, memoryHarness("")); len(failed) != 0 {
		t.Errorf("recorder reports failures for the correct connector: %v", failed)
	}
}
