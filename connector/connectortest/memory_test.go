package connectortest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// memory is a tiny connector over three in-memory tables: users(id, email,
// phone), the root; orders(user_id, item); and sms(phone, text), matched by
// phone only. Emails match case-insensitively, phones by their E.164 form
// (national numbers read as GB). bug selects one deliberate defect so the
// test can show the suite notices it.
type memory struct {
	mu     sync.Mutex
	users  []memUser
	orders []memOrder
	sms    []memSMS
	bug    string
}

type memUser struct{ id, email, phone, owner string }
type memOrder struct{ userID, item, owner string }
type memSMS struct{ phone, text, owner string }

const memFollowLimit = 10

var (
	_ connector.Connector       = (*memory)(nil)
	_ connector.SubjectResolver = (*memory)(nil)
)

func (m *memory) emailIs(stored, v string) bool {
	if m.bug == "case-sensitive" {
		return stored == v
	}
	return stored != "" && strings.ToLower(strings.TrimSpace(stored)) == v
}

func (m *memory) phoneIs(stored, v string) bool {
	if m.bug == "phone-exact" {
		return stored == v
	}
	p, ok := lethe.CanonicalPhone(stored, "GB")
	return ok && p == v
}

// userMatches reports whether u holds one of the identities.
func (m *memory) userMatches(u memUser, ids []lethe.Identity) bool {
	for _, id := range ids {
		switch id.Type {
		case lethe.IdentityUserID:
			if u.id == id.Value {
				return true
			}
		case lethe.IdentityEmail:
			if m.emailIs(u.email, id.Value) {
				return true
			}
		case lethe.IdentityPhone:
			if m.phoneIs(u.phone, id.Value) {
				return true
			}
		}
	}
	return false
}

func (m *memory) ids(s connector.Subject) map[string]bool {
	ids := map[string]bool{}
	for _, u := range m.users {
		if m.userMatches(u, s.Identities) {
			ids[u.id] = true
		}
	}
	return ids
}

func (m *memory) smsMatches(x memSMS, s connector.Subject) bool {
	for _, p := range s.Values(lethe.IdentityPhone) {
		if m.phoneIs(x.phone, p) {
			return true
		}
	}
	return false
}

func (m *memory) Resolve(ctx context.Context, s connector.Subject) ([]lethe.Identity, error) {
	r, err := m.ResolveSubject(ctx, s)
	return r.Identities, err
}

// reach counts the users one identity matches.
func (m *memory) reach(id lethe.Identity) int {
	n := 0
	for _, u := range m.users {
		if m.userMatches(u, []lethe.Identity{id}) {
			n++
		}
	}
	return n
}

func (m *memory) ResolveSubject(ctx context.Context, s connector.Subject) (connector.Resolution, error) {
	if err := m.ctxErr(ctx); err != nil {
		return connector.Resolution{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	known := map[lethe.Identity]bool{}
	unfollowed := map[string]bool{}
	var follow, found []lethe.Identity
	followable := func(id lethe.Identity, where string) bool {
		if m.bug != "follows-placeholders" && m.reach(id) > memFollowLimit {
			unfollowed[where] = true
			return false
		}
		return true
	}
	for _, id := range s.Identities {
		known[id] = true
		if followable(id, "users."+string(id.Type)) {
			follow = append(follow, id)
		}
	}
	for added := true; added; {
		added = false
		for _, u := range m.users {
			if !m.userMatches(u, follow) {
				continue
			}
			var ids []lethe.Identity
			for _, id := range []lethe.Identity{{Type: lethe.IdentityUserID, Value: u.id}, {Type: lethe.IdentityEmail, Value: u.email}, {Type: lethe.IdentityPhone, Value: u.phone}} {
				if n, err := lethe.NormalizeIdentity(id); err == nil {
					if id.Type == lethe.IdentityPhone {
						n.Value, _ = lethe.CanonicalPhone(u.phone, "GB")
					}
					ids = append(ids, n)
				}
			}
			for _, id := range ids {
				if known[id] {
					continue
				}
				known[id] = true
				if followable(id, "users."+string(id.Type)) {
					found = append(found, id)
					follow = append(follow, id)
					added = true
				}
			}
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Value < found[j].Value })
	roots := 0
	for _, u := range m.users {
		if m.userMatches(u, append(slices.Clone(s.Identities), found...)) {
			roots++
		}
	}
	if m.bug == "no-roots" {
		roots = min(roots, 1)
	}
	r := connector.Resolution{Identities: found, RootRecords: map[string]int{"users": roots}}
	for u := range unfollowed {
		r.Unfollowed = append(r.Unfollowed, u)
	}
	sort.Strings(r.Unfollowed)
	return r, nil
}

func (m *memory) count(s connector.Subject) (users, orders, sms int64) {
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
	for _, x := range m.sms {
		if m.smsMatches(x, s) {
			sms++
		}
	}
	return users, orders, sms
}

func report(users, orders, sms int64) lethe.Report {
	return lethe.Report{Items: []lethe.ReportItem{
		{Object: "orders", Action: lethe.ActionDelete, Rows: orders},
		{Object: "sms", Action: lethe.ActionDelete, Rows: sms},
		{Object: "users", Action: lethe.ActionDelete, Rows: users},
	}}
}

// lacksPhone is the defect of a Redis SREM sent without members: an entry
// whose identity type the subject lacks fails instead of yielding nothing.
func (m *memory) lacksPhone(s connector.Subject) error {
	if m.bug == "fails-missing-type" && len(s.Values(lethe.IdentityPhone)) == 0 {
		return fmt.Errorf("memory: sms: wrong number of arguments")
	}
	return nil
}

func (m *memory) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	if err := m.ctxErr(ctx); err != nil {
		return lethe.Report{}, err
	}
	if err := m.lacksPhone(s); err != nil {
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
	if err := m.lacksPhone(s); err != nil {
		return lethe.Report{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, o, x := m.count(s)
	ids := m.ids(s)
	if m.bug == "erase-not-idempotent" {
		u, o = 1, 1
	}
	if m.bug == "erase-too-much" {
		m.orders = nil
	}
	var users []memUser
	for _, e := range m.users {
		if !ids[e.id] {
			users = append(users, e)
		}
	}
	var orders []memOrder
	for _, e := range m.orders {
		if !ids[e.userID] {
			orders = append(orders, e)
		}
	}
	var sms []memSMS
	for _, e := range m.sms {
		if !m.smsMatches(e, s) {
			sms = append(sms, e)
		}
	}
	m.users, m.orders, m.sms = users, orders, sms
	return report(u, o, x), nil
}

func (m *memory) Verify(ctx context.Context, s connector.Subject) error {
	if err := m.ctxErr(ctx); err != nil {
		return err
	}
	if err := m.lacksPhone(s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, o, x := m.count(s)
	if m.bug == "verify-always-passes" {
		return nil
	}
	if u+o+x > 0 {
		if m.bug == "leaky-errors" {
			return fmt.Errorf("memory: %d users, %d orders and %d sms left for %v", u, o, x, s.Values(lethe.IdentityEmail))
		}
		return fmt.Errorf("memory: %d users, %d orders and %d sms left", u, o, x)
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

const (
	subjectPhone     = "+447911123456"
	placeholderPhone = "+442079460000"
)

// memoryFixture wraps m as a Fixture for the subject given.
func memoryFixture(m *memory, given ...lethe.Identity) Fixture {
	return Fixture{
		Connector: m,
		Subject:   connector.Subject{RequestID: "r1", Identities: given},
		Snapshot: func(testing.TB) (string, string) {
			m.mu.Lock()
			defer m.mu.Unlock()
			var s, o strings.Builder
			pick := func(owner string) *strings.Builder {
				if owner == "subject" {
					return &s
				}
				return &o
			}
			for _, u := range m.users {
				fmt.Fprintf(pick(u.owner), "user %s %s %s\n", u.id, u.email, u.phone)
			}
			for _, x := range m.orders {
				fmt.Fprintf(pick(x.owner), "order %s %s\n", x.userID, x.item)
			}
			for _, x := range m.sms {
				fmt.Fprintf(pick(x.owner), "sms %s %s\n", x.phone, x.text)
			}
			return s.String(), o.String()
		},
		Remaining: func(testing.TB) int64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			var n int64
			for _, u := range m.users {
				if u.owner == "subject" {
					n++
				}
			}
			for _, x := range m.orders {
				if x.owner == "subject" {
					n++
				}
			}
			for _, x := range m.sms {
				if x.owner == "subject" {
					n++
				}
			}
			return n
		},
	}
}

func newMemory(bug, email, phone string) *memory {
	return &memory{
		bug: bug,
		users: []memUser{
			{"u-subject-771", email, phone, "subject"},
			{"u-other-772", "other@example.com", "+447911654321", "other"},
		},
		orders: []memOrder{
			{"u-subject-771", "book", "subject"}, {"u-subject-771", "lamp", "subject"},
			{"u-other-772", "chair", "other"},
		},
		sms: []memSMS{{"+447911654321", "hi", "other"}},
	}
}

func memoryHarness(bug string) Harness {
	email := lethe.Identity{Type: lethe.IdentityEmail, Value: "subject@example.com"}
	return Harness{
		Setup: func(tb testing.TB) Fixture {
			return memoryFixture(newMemory(bug, email.Value, subjectPhone), email)
		},
		Scenario: func(tb testing.TB, sc Scenario) (Fixture, bool) {
			switch sc {
			case MixedCaseEmail:
				return memoryFixture(newMemory(bug, "Subject@Example.COM", ""), email), true
			case FormattedPhone:
				m := newMemory(bug, "", "+44 7911 123 456")
				for _, p := range []string{"+44 7911 123456", "(+44) 7911-123-456", "0044.7911.123456", "07911 123456"} {
					m.sms = append(m.sms, memSMS{p, "code", "subject"})
				}
				return memoryFixture(m, lethe.Identity{Type: lethe.IdentityPhone, Value: subjectPhone}), true
			case UserIDMixedCaseEmail:
				m := newMemory(bug, " Subject.Person@Example.com", "+44 7911 123 456")
				m.sms = append(m.sms, memSMS{"07911 123456", "code", "subject"})
				return memoryFixture(m, lethe.Identity{Type: lethe.IdentityUserID, Value: "u-subject-771"}), true
			case SharedPhone:
				m := newMemory(bug, email.Value, subjectPhone)
				m.users = append(m.users, memUser{"u-partner-773", "partner@example.com", "07911 123456", "other"})
				return memoryFixture(m, lethe.Identity{Type: lethe.IdentityPhone, Value: subjectPhone}), true
			case Placeholder:
				m := newMemory(bug, email.Value, placeholderPhone)
				for i := range 300 {
					m.users = append(m.users, memUser{fmt.Sprintf("u-many-%d", i), fmt.Sprintf("many%d@example.com", i), "020 7946 0000", "other"})
					m.sms = append(m.sms, memSMS{placeholderPhone, fmt.Sprint(i), "other"})
				}
				f := memoryFixture(m, email)
				f.Shared = []lethe.Identity{{Type: lethe.IdentityPhone, Value: placeholderPhone}}
				return f, true
			case MissingIdentityType:
				return memoryFixture(newMemory(bug, email.Value, ""), email), true
			}
			return Fixture{}, false // no composite keys in memory
		},
	}
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
func (r *recorder) SkipNow()                          { runtime.Goexit() }
func (r *recorder) Skip(args ...any)                  { runtime.Goexit() }
func (r *recorder) Skipf(format string, args ...any)  { runtime.Goexit() }
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
		{"case-sensitive", "MixedCaseEmail/EraseMatchesPlan"},
		{"phone-exact", "FormattedPhone/EraseMatchesPlan"},
		{"no-roots", "SharedPhone/ReportsTwoRootRecords"},
		{"follows-placeholders", "Placeholder/NeverFollowed"},
		{"follows-placeholders", "Placeholder/EraseLeavesOthersAlone"},
		{"fails-missing-type", "MissingIdentityType/EraseMatchesPlan"},
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
