// Package connectortest is the conformance suite every connector runs:
// the properties the pipeline relies on (idempotent erase, side-effect-free
// Resolve and Plan, honest Verify, honoured cancellation, no identity values
// in errors) checked against the connector's real backing system.
//
// A connector's test supplies a Harness and calls Exercise:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Exercise(t, connectortest.Harness{Setup: func(tb testing.TB) connectortest.Fixture {
//			db := freshDatabase(tb)
//			seed(tb, db) // the subject's data and other people's
//			return connectortest.Fixture{Connector: ..., Subject: ..., Snapshot: ..., Remaining: ...}
//		}})
//	}
//
// Connectors that match stored values themselves (SQL, Redis) also give
// Harness.Scenario, which seeds the real-data shapes of Scenarios (mixed-case
// emails, formatted phones, shared phones, placeholders, missing identity
// types, composite keys); every check runs on each, plus the root-record
// and placeholder checks of connector.SubjectResolver.
package connectortest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// Harness tells the suite how to get a fresh system to test against.
type Harness struct {
	// Setup prepares a fresh backing system holding the data of one subject
	// and of other people, and returns the connector under test over it.
	// It is called once per check, so checks never see each other's
	// changes; release resources with tb.Cleanup.
	Setup func(tb testing.TB) Fixture
	// Scenario prepares a fresh system for one matching scenario (see
	// Scenarios), like Setup. ok false says the scenario cannot exist in
	// this kind of system (composite keys in Redis); the suite logs it.
	// Nil for connectors that do no matching of their own (processors,
	// webhooks): the scenarios are not run.
	Scenario func(tb testing.TB, sc Scenario) (f Fixture, ok bool)
}

// Scenario names one shape of real data the matching rules must handle.
// The harness seeds the subject's data in that shape next to other
// people's; the suite runs every property check on it, plus the
// scenario's own checks.
type Scenario string

// The scenarios every matching connector seeds.
const (
	// MixedCaseEmail: the subject's email is stored in mixed case
	// ("Alice.Smith@Example.com") and given in another case.
	MixedCaseEmail Scenario = "MixedCaseEmail"
	// FormattedPhone: the subject's phone is stored in four formats
	// (spaces, dashes or dots, parentheses, "00" or national with the
	// map's default region) and given in E.164.
	FormattedPhone Scenario = "FormattedPhone"
	// UserIDMixedCaseEmail: the subject is given by user id only; their
	// stored email is mixed case and other records hold only that email,
	// so they are found only if the email read back matches its rows.
	UserIDMixedCaseEmail Scenario = "UserIDMixedCaseEmail"
	// SharedPhone: two accounts share the phone the subject is given by.
	// The connector must implement connector.SubjectResolver and report 2
	// root records (the pipeline stops such a request as ambiguous).
	SharedPhone Scenario = "SharedPhone"
	// Placeholder: the subject, given by email, has a value (a phone such
	// as +1 000..., an email such as test@test.com) shared by 300 other
	// accounts; Fixture.Shared holds it. It must never be followed: it is
	// absent from the resolution, named in Unfollowed, and the 300
	// accounts stay untouched.
	Placeholder Scenario = "Placeholder"
	// MissingIdentityType: the subject lacks an identity type some entry
	// of the map needs (a Redis set keyed on {user_id}, a table matched
	// only by phone): that entry yields no work and no error.
	MissingIdentityType Scenario = "MissingIdentityType"
	// CompositeKey: the subject's rows of a table with a composite primary
	// key cross a batch boundary.
	CompositeKey Scenario = "CompositeKey"
)

// Scenarios lists every scenario, in the order the suite runs them.
var Scenarios = []Scenario{MixedCaseEmail, FormattedPhone, UserIDMixedCaseEmail, SharedPhone, Placeholder, MissingIdentityType, CompositeKey}

// Fixture is one prepared system.
type Fixture struct {
	Connector connector.Connector
	// Subject holds the identities as a request would give them; the suite
	// adds what Resolve finds before it plans and erases. Use distinctive
	// values (no short numbers that could appear in a count): the suite
	// fails any error whose text contains one of them.
	Subject connector.Subject
	// Snapshot returns a deterministic dump of the whole system, split into
	// the subject's data and everyone else's. The suite only compares
	// dumps for equality, so the format is the harness's choice.
	Snapshot func(tb testing.TB) (subject, others string)
	// Remaining counts the subject's records that still identify them
	// (deleted or pseudonymised records no longer count). It is computed
	// independently of the connector, so it keeps the connector honest.
	Remaining func(tb testing.TB) int64
	// Blind is set for targets lethe can send an erasure to but never read
	// back (a processor's deletion API without a status endpoint). Their
	// Verify cannot tell before from after, and a repeated Erase or Plan
	// cannot know the subject was forwarded already, so the suite does not
	// require Verify to fail before Erase nor a repeat to report zero. It
	// still requires Remaining (which the harness computes on the
	// receiving side) to reach zero, the repeat to change nothing, and
	// every other check.
	Blind bool
	// Shared holds values of the subject that other people's records hold
	// too and that resolution must not follow (Placeholder).
	Shared []lethe.Identity
}

// Exercise runs every check as a subtest of t.
func Exercise(t *testing.T, h Harness) {
	t.Helper()
	exercise(h, func(name string, check func(tb testing.TB)) {
		t.Run(name, func(t *testing.T) { check(t) })
	})
}

// exercise is Exercise over an abstract subtest runner, so the suite's own
// test can run it with a recorder and show that it fails broken connectors.
func exercise(h Harness, run func(name string, check func(tb testing.TB))) {
	runChecks("", h.Setup, run)
	if h.Scenario == nil {
		return
	}
	for _, sc := range Scenarios {
		setup := func(tb testing.TB) Fixture {
			f, ok := h.Scenario(tb, sc)
			if !ok {
				tb.Logf("scenario %s does not apply to this connector", sc)
				tb.SkipNow()
			}
			return f
		}
		prefix := string(sc) + "/"
		switch sc {
		case SharedPhone:
			run(prefix+"ReportsTwoRootRecords", func(tb testing.TB) { checkShared(tb, newFixture(tb, setup)) })
		case Placeholder:
			run(prefix+"NeverFollowed", func(tb testing.TB) { checkPlaceholder(tb, newFixture(tb, setup)) })
			runChecks(prefix, setup, run)
		default:
			runChecks(prefix, setup, run)
		}
	}
}

func runChecks(prefix string, setup func(tb testing.TB) Fixture, run func(name string, check func(tb testing.TB))) {
	for _, c := range checks {
		run(prefix+c.name, func(tb testing.TB) {
			tb.Helper()
			c.fn(tb, newFixture(tb, setup))
		})
	}
}

func newFixture(tb testing.TB, setup func(tb testing.TB) Fixture) *fixture {
	tb.Helper()
	f := setup(tb)
	if f.Connector == nil || f.Snapshot == nil || f.Remaining == nil || len(f.Subject.Identities) == 0 {
		tb.Fatalf("Harness.Setup must return a Connector, Snapshot, Remaining and a Subject with identities")
	}
	return &fixture{Fixture: f}
}

// resolution runs ResolveSubject, which the scenario needs.
func (f *fixture) resolution(tb testing.TB) connector.Resolution {
	tb.Helper()
	sr, ok := f.Connector.(connector.SubjectResolver)
	if !ok {
		tb.Fatalf("connector does not implement connector.SubjectResolver")
	}
	f.remember(f.Subject.Identities)
	f.remember(f.Shared)
	s, o := f.snapshot(tb)
	r, err := sr.ResolveSubject(bg(), f.Subject)
	f.noLeak(tb, "ResolveSubject", err)
	if err != nil {
		tb.Fatalf("ResolveSubject: %v", err)
	}
	f.unchanged(tb, "ResolveSubject", s, o)
	for _, u := range r.Unfollowed {
		for _, v := range f.values {
			if strings.Contains(u, v) {
				tb.Errorf("Unfollowed names a value (len %d), not a kind", len(v))
			}
		}
	}
	// Resolve must agree with ResolveSubject.
	ids, err := f.Connector.Resolve(bg(), f.Subject)
	if err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	if fmt.Sprint(idValues(ids)) != fmt.Sprint(idValues(r.Identities)) {
		tb.Errorf("Resolve and ResolveSubject return different identities (%d and %d)", len(ids), len(r.Identities))
	}
	return r
}

func idValues(ids []lethe.Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id.Type) + "\x00" + id.Value
	}
	sort.Strings(out)
	return out
}

func maxRoots(r connector.Resolution) int {
	n := 0
	for _, c := range r.RootRecords {
		n = max(n, c)
	}
	return n
}

// checkShared: a phone shared by two accounts reaches both; the
// resolution says so, so the pipeline can stop before erasing either.
func checkShared(tb testing.TB, f *fixture) {
	r := f.resolution(tb)
	if n := maxRoots(r); n != 2 || !r.Ambiguous() {
		tb.Errorf("two accounts share the phone: root records %v, want 2 in one object (ambiguous)", r.RootRecords)
	}
}

// checkPlaceholder: a value shared by 300 accounts is not followed.
func checkPlaceholder(tb testing.TB, f *fixture) {
	if len(f.Shared) == 0 {
		tb.Fatalf("the Placeholder fixture must name the shared value in Fixture.Shared")
	}
	r := f.resolution(tb)
	for _, id := range r.Identities {
		for _, sh := range f.Shared {
			if id == sh {
				tb.Errorf("resolution followed the %s shared by 300 accounts", id.Type)
			}
		}
	}
	if len(r.Unfollowed) == 0 {
		tb.Errorf("resolution does not name the placeholder it did not follow (Unfollowed empty)")
	}
	if n := maxRoots(r); n != 1 || r.Ambiguous() {
		tb.Errorf("subject has one account: root records %v, want 1", r.RootRecords)
	}
}

// fixture carries the identity values seen so far, so every error the
// connector returns can be checked against all of them.
type fixture struct {
	Fixture
	values []string
}

var checks = []struct {
	name string
	fn   func(tb testing.TB, f *fixture)
}{
	{"ResolveChangesNothing", checkResolve},
	{"PlanChangesNothing", checkPlan},
	{"VerifyFailsBeforeErase", checkVerifyBefore},
	{"EraseMatchesPlan", checkErase},
	{"EraseIsIdempotent", checkIdempotent},
	{"EraseLeavesOthersAlone", checkOthers},
	{"CanceledContext", checkCanceled},
}

func bg() context.Context { return context.Background() }

// subject resolves the fixture's subject the way the pipeline does (given
// identities plus linked ones) and remembers every value for leak checks.
func (f *fixture) subject(tb testing.TB) connector.Subject {
	tb.Helper()
	f.remember(f.Subject.Identities)
	found, err := f.Connector.Resolve(bg(), f.Subject)
	f.noLeak(tb, "Resolve", err)
	if err != nil {
		tb.Fatalf("Resolve: %v", err)
	}
	f.remember(found)
	s := connector.Subject{RequestID: f.Subject.RequestID}
	seen := map[lethe.Identity]bool{}
	for _, id := range append(append([]lethe.Identity(nil), f.Subject.Identities...), found...) {
		if !seen[id] {
			seen[id] = true
			s.Identities = append(s.Identities, id)
		}
	}
	return s
}

func (f *fixture) remember(ids []lethe.Identity) {
	for _, id := range ids {
		if id.Value != "" {
			f.values = append(f.values, id.Value)
		}
	}
}

// noLeak fails the check if err's text holds an identity value.
func (f *fixture) noLeak(tb testing.TB, method string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, v := range f.values {
		if strings.Contains(msg, v) {
			tb.Errorf("%s: error text contains an identity value of the subject (len %d)", method, len(v))
		}
	}
}

func (f *fixture) snapshot(tb testing.TB) (string, string) {
	tb.Helper()
	return f.Snapshot(tb)
}

func (f *fixture) unchanged(tb testing.TB, what, subject, others string) {
	tb.Helper()
	s2, o2 := f.snapshot(tb)
	if s2 != subject || o2 != others {
		tb.Errorf("%s changed the system", what)
	}
}

func checkResolve(tb testing.TB, f *fixture) {
	s, o := f.snapshot(tb)
	sub := f.subject(tb)
	for _, id := range sub.Identities {
		if !id.Type.Valid() {
			tb.Errorf("Resolve returned an identity of invalid type %q", id.Type)
		}
	}
	f.unchanged(tb, "Resolve", s, o)
	// Resolving the resolved set again must be just as harmless.
	_, err := f.Connector.Resolve(bg(), sub)
	f.noLeak(tb, "Resolve", err)
	if err != nil {
		tb.Fatalf("second Resolve: %v", err)
	}
	f.unchanged(tb, "second Resolve", s, o)
}

func checkPlan(tb testing.TB, f *fixture) {
	sub := f.subject(tb)
	s, o := f.snapshot(tb)
	plan, err := f.Connector.Plan(bg(), sub)
	f.noLeak(tb, "Plan", err)
	if err != nil {
		tb.Fatalf("Plan: %v", err)
	}
	f.unchanged(tb, "Plan", s, o)
	if changed(plan) == 0 {
		tb.Errorf("Plan reports nothing to erase for a subject with data (remaining %d)", f.Remaining(tb))
	}
}

func checkVerifyBefore(tb testing.TB, f *fixture) {
	sub := f.subject(tb)
	if n := f.Remaining(tb); n == 0 {
		tb.Fatalf("harness seeded no data for the subject")
	}
	s, o := f.snapshot(tb)
	err := f.Connector.Verify(bg(), sub)
	f.noLeak(tb, "Verify", err)
	if err == nil && !f.Blind {
		tb.Errorf("Verify passed before Erase while the subject has data")
	}
	f.unchanged(tb, "Verify", s, o)
}

func checkErase(tb testing.TB, f *fixture) {
	sub := f.subject(tb)
	plan, err := f.Connector.Plan(bg(), sub)
	if err != nil {
		tb.Fatalf("Plan: %v", err)
	}
	rep, err := f.erase(sub)
	f.noLeak(tb, "Erase", err)
	if err != nil {
		tb.Fatalf("Erase: %v", err)
	}
	if p, e := items(plan), items(rep); p != e {
		tb.Errorf("Erase report differs from Plan\nplan:  %s\nerase: %s", p, e)
	}
	if n := f.Remaining(tb); n != 0 {
		tb.Errorf("after Erase %d of the subject's records still identify them", n)
	}
	err = f.Connector.Verify(bg(), sub)
	f.noLeak(tb, "Verify", err)
	if err != nil {
		tb.Errorf("Verify after Erase: %v", err)
	}
}

func checkIdempotent(tb testing.TB, f *fixture) {
	sub := f.subject(tb)
	if _, err := f.erase(sub); err != nil {
		tb.Fatalf("Erase: %v", err)
	}
	s, o := f.snapshot(tb)
	rep, err := f.erase(sub)
	f.noLeak(tb, "second Erase", err)
	if err != nil {
		tb.Fatalf("second Erase: %v", err)
	}
	if n := changed(rep); n != 0 && !f.Blind {
		tb.Errorf("second Erase reports %d rows changed, want 0: %s", n, items(rep))
	}
	f.unchanged(tb, "second Erase", s, o)
	plan, err := f.Connector.Plan(bg(), sub)
	if err != nil {
		tb.Fatalf("Plan after Erase: %v", err)
	}
	if n := changed(plan); n != 0 && !f.Blind {
		tb.Errorf("Plan after Erase reports %d rows to change, want 0", n)
	}
	if err := f.Connector.Verify(bg(), sub); err != nil {
		tb.Errorf("Verify after second Erase: %v", err)
	}
}

func checkOthers(tb testing.TB, f *fixture) {
	sub := f.subject(tb)
	_, others := f.snapshot(tb)
	if _, err := f.erase(sub); err != nil {
		tb.Fatalf("Erase: %v", err)
	}
	if _, o2 := f.snapshot(tb); o2 != others {
		tb.Errorf("Erase changed other people's data")
	}
}

func checkCanceled(tb testing.TB, f *fixture) {
	sub := f.subject(tb)
	s, o := f.snapshot(tb)
	ctx, cancel := context.WithCancel(bg())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Resolve", func() error { _, err := f.Connector.Resolve(ctx, sub); return err }},
		{"Plan", func() error { _, err := f.Connector.Plan(ctx, sub); return err }},
		{"Erase", func() error { _, err := f.Connector.Erase(ctx, sub); return err }},
		{"Verify", func() error { return f.Connector.Verify(ctx, sub) }},
	}
	for _, c := range calls {
		err := c.call()
		f.noLeak(tb, c.name, err)
		if !errors.Is(err, context.Canceled) {
			tb.Errorf("%s with a canceled context: got %v, want an error wrapping context.Canceled", c.name, err)
		}
	}
	f.unchanged(tb, "calls with a canceled context", s, o)
}

// changed sums the rows a report says were (or would be) changed; retained
// rows are only reported, never changed.
func changed(r lethe.Report) int64 {
	var n int64
	for _, it := range r.Items {
		if it.Action != lethe.ActionRetain {
			n += it.Rows
		}
	}
	return n
}

// items renders a report in a canonical order for comparison.
func items(r lethe.Report) string {
	out := make([]string, 0, len(r.Items))
	for _, it := range r.Items {
		out = append(out, fmt.Sprintf("%s:%s:%d", it.Object, it.Action, it.Rows))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
