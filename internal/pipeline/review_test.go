package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/manual"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/intake"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

var reviewer = lethe.Act{Actor: lethe.ActorAdmin, ActorID: "rita"}

// waitStatus waits until the request is at status (and stage, when set).
func waitStatus(t *testing.T, st store.Store, id string, status lethe.Status, stage lethe.Stage) *lethe.Request {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		r, err := st.GetRequest(context.Background(), id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == status && (stage == "" || r.Stage == stage) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s is %s/%s after %s, want %s", id, r.Status, r.Stage, waitTimeout, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if lethe.ErrorCode(err) != code {
		t.Errorf("%s: error %v, want %s", what, err, code)
	}
}

// unchanged fails when the request's audit trail or state moved.
func unchanged(t *testing.T, st store.Store, id string) func(what string) {
	t.Helper()
	ctx := context.Background()
	before, err := st.ListAudit(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	r0, err := st.GetRequest(ctx, id, store.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	return func(what string) {
		t.Helper()
		after, err := st.ListAudit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		r1, err := st.GetRequest(ctx, id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) || r1.Status != r0.Status || r1.Stage != r0.Stage || !cmp.Equal(r1.Tasks, r0.Tasks) {
			t.Errorf("%s changed the request: %d -> %d events, %s/%s -> %s/%s", what, len(before), len(after), r0.Status, r0.Stage, r1.Status, r1.Stage)
		}
	}
}

func holdReasons(t *testing.T, p *Pipeline, id string, activeOnly bool) []lethe.HoldReason {
	t.Helper()
	hs, err := p.Holds(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []lethe.HoldReason
	for _, h := range hs {
		if !activeOnly || h.Active() {
			out = append(out, h.Reason)
		}
	}
	return out
}

// TestWaitingPeriodEndsThenErases: with a waiting period, a request is held
// before anything is resolved or erased; the sweep does nothing before the
// period ends and releases it after (on an injected clock), and the
// request then runs to completion. One canceled while it waits ends
// canceled with nothing erased.
func TestWaitingPeriodEndsThenErases(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		clk := &clock{now: time.Now()}
		cfg := testConfig()
		cfg.Now = clk.Now
		cfg.Review = Review{WaitingPeriod: 72 * time.Hour}
		m := newMemTarget()
		m.put(email, 3)
		other := lethe.Identity{Type: lethe.IdentityEmail, Value: "grace@example.com"}
		m.put(other, 2)
		p := start(t, st, cfg, Target{"db", m})

		id := submit(t, st, p, email)
		waitStatus(t, st, id, lethe.StatusHeld, lethe.StageResolve)
		if got := holdReasons(t, p, id, true); !slices.Equal(got, []lethe.HoldReason{lethe.HoldWaitingPeriod}) {
			t.Fatalf("active holds = %v, want waiting_period", got)
		}

		// Canceling during the waiting period ends the request.
		canceled := submit(t, st, p, other)
		waitStatus(t, st, canceled, lethe.StatusHeld, lethe.StageResolve)
		in := intake.New(st, p, testdb.Keyring(t), intake.Config{Terminator: p, Now: clk.Now})
		if _, err := in.Cancel(ctx, store.Scope{All: true}, canceled, lethe.ActorAdmin, ""); err != nil {
			t.Fatalf("cancel during the waiting period: %v", err)
		}

		clk.add(71 * time.Hour)
		if n, err := p.SweepHolds(ctx); err != nil || n != 0 {
			t.Fatalf("sweep before the period ended = %d, %v; want 0", n, err)
		}
		waitIdle(t, p)
		if n := m.count("resolve") + m.count("erase"); n != 0 {
			t.Fatalf("target called %d times during the waiting period", n)
		}
		if r := waitStatus(t, st, id, lethe.StatusHeld, ""); r.StartedAt.IsZero() == false {
			t.Errorf("held request started: %+v", r)
		}

		clk.add(2 * time.Hour)
		if n, err := p.SweepHolds(ctx); err != nil || n != 1 {
			t.Fatalf("sweep after the period ended = %d, %v; want 1", n, err)
		}
		if n, err := p.SweepHolds(ctx); err != nil || n != 0 {
			t.Fatalf("second sweep = %d, %v; want 0", n, err)
		}
		waitDone(t, st, id, lethe.StatusCompleted)
		if m.held(email) != 0 {
			t.Error("rows left after the waiting period ended")
		}
		if m.held(other) != 2 {
			t.Error("the canceled request erased rows")
		}
		c := auditTypes(t, st, id)
		if c[string(lethe.EventRequestHeld)] != 1 || c[string(lethe.EventRequestReleased)] != 1 {
			t.Errorf("audit = %v, want one held and one released", c)
		}
		if got := waitStatus(t, st, canceled, lethe.StatusCanceled, ""); got.Status != lethe.StatusCanceled {
			t.Errorf("canceled request is %s", got.Status)
		}
	})
}

// TestApprovalAndDenial: the approval policy holds every request under its
// regulation; an approved one erases, a denied one ends denied with the
// reason code as its outcome, a receipt and no identity left, and erases
// nothing. Approving a completed request, denying with an unknown code,
// and a note naming the subject are refused and change nothing.
func TestApprovalAndDenial(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		kr := testdb.Keyring(t)
		signer, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Signer = signer
		cfg.Review = Review{ApproveRegulations: []lethe.Regulation{lethe.GDPR}}
		m := newMemTarget()
		m.put(email, 3)
		denied := lethe.Identity{Type: lethe.IdentityEmail, Value: "mallory@example.com"}
		m.put(denied, 4)
		p := start(t, st, cfg, Target{"db", m})

		ok := submit(t, st, p, email)
		waitStatus(t, st, ok, lethe.StatusHeld, lethe.StageResolve)
		if got := holdReasons(t, p, ok, true); !slices.Equal(got, []lethe.HoldReason{lethe.HoldApprovalRequired}) {
			t.Fatalf("active holds = %v, want approval_required", got)
		}
		if _, err := p.Approve(ctx, ok, reviewer); err != nil {
			t.Fatal(err)
		}
		waitDone(t, st, ok, lethe.StatusCompleted)
		if m.held(email) != 0 {
			t.Error("the approved request erased nothing")
		}
		events, err := st.ListAudit(ctx, ok)
		if err != nil {
			t.Fatal(err)
		}
		approvedBy := ""
		for _, e := range events {
			if e.Type == lethe.EventRequestApproved {
				approvedBy = e.ActorID
			}
		}
		if approvedBy != "rita" {
			t.Errorf("approval recorded by %q, want rita", approvedBy)
		}
		same := unchanged(t, st, ok)
		_, err = p.Approve(ctx, ok, reviewer)
		wantCode(t, "approving a completed request", err, lethe.ECONFLICT)
		same("approving a completed request")

		id := submit(t, st, p, denied)
		waitStatus(t, st, id, lethe.StatusHeld, lethe.StageResolve)
		same = unchanged(t, st, id)
		_, err = p.Deny(ctx, id, "because", reviewer)
		wantCode(t, "an unknown reason code", err, lethe.EINVALID)
		_, err = p.Deny(ctx, id, lethe.DenySuspectedFraud, lethe.Act{Actor: lethe.ActorAdmin, ActorID: "rita", Note: "same as MALLORY@example.com"})
		wantCode(t, "a note naming the subject", err, lethe.EINVALID)
		if err != nil && strings.Contains(strings.ToLower(err.Error()), "mallory") {
			t.Errorf("the refusal echoes the note: %v", err)
		}
		same("refused denials")

		r, err := p.Deny(ctx, id, lethe.DenySuspectedFraud, lethe.Act{Actor: lethe.ActorAdmin, ActorID: "rita", Note: "ticket 4411: chargeback pattern"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != lethe.StatusDenied || r.Outcome != lethe.Outcome(lethe.DenySuspectedFraud) || !r.Status.Terminal() {
			t.Fatalf("denied request = %s outcome %q", r.Status, r.Outcome)
		}
		if ids, err := st.RequestIdentities(ctx, id); err != nil || len(ids) != 0 {
			t.Errorf("identities after denial: %d, %v", len(ids), err)
		}
		rc, err := st.GetReceipt(ctx, id, store.Scope{All: true})
		if err != nil {
			t.Fatalf("denied request has no receipt: %v", err)
		}
		keys, err := audit.KeyMap(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := audit.Verify(rc.Body, keys)
		if err != nil || doc.Status != lethe.StatusDenied || doc.Outcome != lethe.Outcome(lethe.DenySuspectedFraud) {
			t.Errorf("receipt: %+v, %v", doc, err)
		}
		c := auditTypes(t, st, id)
		if c[string(lethe.EventRequestDenied)] != 1 || c[string(lethe.EventRequestSuppressed)] != 0 {
			t.Errorf("audit = %v, want one request.denied and no suppression", c)
		}
		waitIdle(t, p)
		if m.held(denied) != 4 {
			t.Error("the denied request erased rows")
		}
		_, err = p.Approve(ctx, id, reviewer)
		wantCode(t, "approving a denied request", err, lethe.ECONFLICT)
	})
}

// TestAmbiguousSubjectIsHeldUntilApproved: a phone shared by two accounts
// reaches two users, so the request is held as ambiguous_subject before
// any target is planned or erased, with the counts on record; once an
// operator approves that both are the subject's, it erases.
func TestAmbiguousSubjectIsHeldUntilApproved(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		users := &accountTarget{memTarget: newMemTarget(), accounts: map[lethe.Identity][]string{
			sharedPhone: {"1", "2"},
			email:       {"1"},
		}}
		users.put(sharedPhone, 2)
		plain := newMemTarget()
		plain.put(sharedPhone, 5)

		p := start(t, st, testConfig(), Target{"users", users}, Target{"sms", plain})
		id := submit(t, st, p, sharedPhone)
		r := waitStatus(t, st, id, lethe.StatusHeld, lethe.StageResolve)
		if diff := cmp.Diff(&lethe.Reach{Accounts: map[string]int{"users/users": 2}}, r.Reach); diff != "" {
			t.Errorf("reach (-want +got):\n%s", diff)
		}
		waitIdle(t, p)
		for name, m := range map[string]*memTarget{"users": users.memTarget, "sms": plain} {
			if n := m.count("erase") + m.count("plan"); n != 0 {
				t.Errorf("%s: %d plan/erase calls while held, want none", name, n)
			}
		}
		events, err := st.ListAudit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 || events[0].Type != lethe.EventRequestHeld {
			t.Fatalf("events = %+v, want request.held first", events)
		}
		if d := events[0].Details; d["reason"] != "ambiguous_subject" || d["accounts"] != "users/users=2" {
			t.Errorf("request.held details = %v", d)
		}
		for k, v := range events[0].Details {
			assertNoValue(t, "audit detail "+k, v, sharedPhone)
		}

		if _, err := p.Approve(context.Background(), id, reviewer); err != nil {
			t.Fatal(err)
		}
		waitDone(t, st, id, lethe.StatusCompleted)
		if users.held(sharedPhone) != 0 || plain.held(sharedPhone) != 0 {
			t.Error("rows left after the ambiguity was approved")
		}
	})
}

// TestLegalHoldBlocksErasureUntilReleased: a legal hold placed while a
// request runs stops it before its next erase attempt; nothing erases
// until it is released, then the request completes. Re-placing it, or
// releasing one that is not there, is refused.
func TestLegalHoldBlocksErasureUntilReleased(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		cfg := testConfig()
		cfg.BackoffBase, cfg.BackoffMax = 2*time.Second, 2*time.Second
		m := newMemTarget()
		m.put(email, 3)
		m.failErase = 1
		m.entered = make(chan struct{}, 10)
		p := start(t, st, cfg, Target{"db", m})

		id := submit(t, st, p, email)
		<-m.entered // the first attempt is under way; it fails, and River retries later

		_, err := p.PlaceLegalHold(ctx, id, lethe.Act{Actor: lethe.ActorAdmin, ActorID: "lee"})
		wantCode(t, "a legal hold without a reason", err, lethe.EINVALID)
		hold := lethe.Act{Actor: lethe.ActorAdmin, ActorID: "lee", Note: "litigation hold, case 2026-17"}
		r, err := p.PlaceLegalHold(ctx, id, hold)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != lethe.StatusHeld || r.Stage != lethe.StageErase {
			t.Fatalf("after the hold: %s/%s, want held/erase", r.Status, r.Stage)
		}
		_, err = p.PlaceLegalHold(ctx, id, hold)
		wantCode(t, "a second legal hold", err, lethe.ECONFLICT)

		waitIdle(t, p) // the retry ran, saw the hold and attempted nothing
		if n := m.count("erase"); n != 1 {
			t.Fatalf("%d erase calls under the legal hold, want the 1 started before it", n)
		}
		if m.held(email) != 3 {
			t.Fatal("rows erased under the legal hold")
		}
		waitStatus(t, st, id, lethe.StatusHeld, lethe.StageErase)

		if _, err := p.ReleaseLegalHold(ctx, id, lethe.Act{Actor: lethe.ActorAdmin, ActorID: "lee"}); err != nil {
			t.Fatal(err)
		}
		waitDone(t, st, id, lethe.StatusCompleted)
		if m.held(email) != 0 {
			t.Error("rows left after the hold was released")
		}
		_, err = p.ReleaseLegalHold(ctx, id, hold)
		wantCode(t, "releasing a hold that is not there", err, lethe.ECONFLICT)
		events, err := st.ListAudit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var held, released string
		for _, e := range events {
			switch e.Type {
			case lethe.EventRequestHeld:
				held = e.ActorID + ":" + e.Details["reason"] + ":" + e.Details["note"]
			case lethe.EventRequestReleased:
				released = e.ActorID
			}
		}
		if held != "lee:legal_hold:litigation hold, case 2026-17" || released != "lee" {
			t.Errorf("audit: held %q released %q", held, released)
		}
	})
}

// failing makes every erase of m fail (as a target that is down) or not.
func failing(m *memTarget, down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if down {
		m.eraseErr = errors.New("connection refused")
	} else {
		m.eraseErr = nil
	}
}

// TestFailedRequestRedrivenAfterTargetRecovers: a target down past its
// retry budget fails the request, which keeps its identities sealed and
// stays on the deadline sweep; once the target is back, an operator's
// retry completes it with a receipt that lists every target.
func TestFailedRequestRedrivenAfterTargetRecovers(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		kr := testdb.Keyring(t)
		signer, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		clk := &clock{now: time.Now()}
		cfg := testConfig()
		cfg.Signer = signer
		cfg.Now = clk.Now
		cfg.Deadlines = &Deadlines{WarnBefore: 24 * time.Hour}
		up, down := newMemTarget(), newMemTarget()
		up.put(email, 2)
		down.put(email, 5)
		failing(down, true)
		p := start(t, st, cfg, Target{"crm", up}, Target{"shop", down})

		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusFailed)
		if !lethe.Redrivable(r.Status, r.Stage) {
			t.Fatalf("failed request %s/%s cannot be re-driven", r.Status, r.Stage)
		}
		if task := taskOf(t, r, "shop"); task.State != lethe.TaskFailed || task.Attempts != cfg.MaxAttempts {
			t.Fatalf("shop task = %+v", task)
		}
		if ids, err := st.RequestIdentities(ctx, id); err != nil || len(ids) != 1 {
			t.Fatalf("a failed request kept %d identities (%v), want its 1 sealed", len(ids), err)
		}

		// Still followed by the deadline sweep.
		clk.add(lethe.DefaultDeadlines[lethe.GDPR] + time.Hour)
		if _, overdue, err := p.SweepDeadlines(ctx); err != nil || overdue != 1 {
			t.Errorf("deadline sweep over the failed request: %d overdue, %v; want 1", overdue, err)
		}

		failing(down, false)
		if _, err := p.RetryRequest(ctx, id, reviewer); err != nil {
			t.Fatal(err)
		}
		r = waitDone(t, st, id, lethe.StatusCompleted)
		if up.held(email) != 0 || down.held(email) != 0 {
			t.Error("rows left after the re-drive")
		}
		if ids, err := st.RequestIdentities(ctx, id); err != nil || len(ids) != 0 {
			t.Errorf("identities after completion: %d, %v", len(ids), err)
		}
		rc, err := st.GetReceipt(ctx, id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := audit.KeyMap(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := audit.Verify(rc.Body, keys)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, tr := range doc.Targets {
			got[tr.Target] = tr.State + "/" + tr.Outcome
		}
		want := map[string]string{"crm": "done/erased", "shop": "done/erased"}
		if doc.Status != lethe.StatusCompleted || !cmp.Equal(got, want) {
			t.Errorf("receipt: %s, targets %v; want completed, %v", doc.Status, got, want)
		}
		c := auditTypes(t, st, id)
		if c[string(lethe.EventRequestRetried)] != 1 || c[string(lethe.EventTaskRetried)] != 1 || c[string(lethe.EventReceiptIssued)] != 2 {
			t.Errorf("audit = %v, want one request.retried, one task.retried, two receipts", c)
		}
		same := unchanged(t, st, id)
		_, err = p.RetryRequest(ctx, id, reviewer)
		wantCode(t, "retrying a completed request", err, lethe.ECONFLICT)
		same("retrying a completed request")
	})
}

// TestSkipAndClose: skipping needs a reason; a failed request whose only
// failed task is skipped finishes completed with the receipt saying why;
// another one closed for good drops its identities and cannot be retried.
func TestSkipAndClose(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		kr := testdb.Keyring(t)
		signer, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Signer = signer
		down := newMemTarget()
		failing(down, true)
		p := start(t, st, cfg, Target{"archive", down})

		skip := submit(t, st, p, email)
		waitDone(t, st, skip, lethe.StatusFailed)
		same := unchanged(t, st, skip)
		_, err = p.SkipTask(ctx, skip, "archive", reviewer)
		wantCode(t, "skipping without a reason", err, lethe.EINVALID)
		_, err = p.SkipTask(ctx, skip, "nowhere", lethe.Act{Actor: lethe.ActorAdmin, ActorID: "rita", Note: "x"})
		wantCode(t, "skipping an unknown target", err, lethe.ENOTFOUND)
		same("refused skips")
		if _, err := p.SkipTask(ctx, skip, "archive", lethe.Act{Actor: lethe.ActorAdmin, ActorID: "rita", Note: "tapes destroyed 2026-11"}); err != nil {
			t.Fatal(err)
		}
		r := waitDone(t, st, skip, lethe.StatusCompleted)
		if task := taskOf(t, r, "archive"); task.State != lethe.TaskSkipped {
			t.Errorf("task = %+v, want skipped", task)
		}
		rc, err := st.GetReceipt(ctx, skip, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := audit.KeyMap(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := audit.Verify(rc.Body, keys)
		if err != nil {
			t.Fatal(err)
		}
		if tr := doc.Targets[0]; tr.State != "skipped" || tr.Reason != "skipped by rita: tapes destroyed 2026-11" {
			t.Errorf("receipt target = %+v, want skipped with the reason", tr)
		}

		other := lethe.Identity{Type: lethe.IdentityEmail, Value: "grace@example.com"}
		closed := submit(t, st, p, other)
		waitDone(t, st, closed, lethe.StatusFailed)
		r, err = p.CloseRequest(ctx, closed, reviewer)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != lethe.StatusFailed || r.Stage != lethe.StageClosed {
			t.Errorf("closed request = %s/%s", r.Status, r.Stage)
		}
		if ids, err := st.RequestIdentities(ctx, closed); err != nil || len(ids) != 0 {
			t.Errorf("identities after close: %d, %v", len(ids), err)
		}
		same = unchanged(t, st, closed)
		_, err = p.RetryRequest(ctx, closed, reviewer)
		wantCode(t, "retrying a closed request", err, lethe.ECONFLICT)
		_, err = p.CloseRequest(ctx, closed, reviewer)
		wantCode(t, "closing twice", err, lethe.ECONFLICT)
		same("refused actions on a closed request")
	})
}

// TestBulkRetryCrashRestartRetriesEachTaskOnce: every request failed on
// one target; the bulk retry dies after two of them (as a process killed
// between two tasks would) and runs again: every task is retried exactly
// once and every request completes.
func TestBulkRetryCrashRestartRetriesEachTaskOnce(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		down := newMemTarget()
		failing(down, true)
		p := start(t, st, testConfig(), Target{"shop", down})
		var ids []string
		for _, v := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
			ids = append(ids, submit(t, st, p, lethe.Identity{Type: lethe.IdentityEmail, Value: v}))
		}
		for _, id := range ids {
			waitDone(t, st, id, lethe.StatusFailed)
		}
		failing(down, false)

		now := time.Now().UTC().Truncate(time.Microsecond)
		b := store.BulkRetry{ID: "bulk-1", Target: "shop", Cutoff: now, Actor: lethe.ActorAdmin, ActorID: "rita", CreatedAt: now}
		if err := st.CreateBulkRetry(ctx, b); err != nil {
			t.Fatal(err)
		}
		crash := errors.New("killed")
		taken := 0
		p.afterBulkTask = func() error {
			taken++
			if taken == 2 {
				return crash
			}
			return nil
		}
		if err := p.runBulkRetry(ctx, b.ID); !errors.Is(err, crash) {
			t.Fatalf("first run = %v, want the crash", err)
		}
		p.afterBulkTask = nil
		if err := p.runBulkRetry(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if err := p.runBulkRetry(ctx, b.ID); err != nil { // finished: a no-op
			t.Fatal(err)
		}
		for _, id := range ids {
			waitDone(t, st, id, lethe.StatusCompleted)
			events, err := st.ListAudit(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range events {
				if e.Type == lethe.EventTaskRetried {
					n++
					if e.ActorID != "rita" || e.Details["bulk_retry"] != b.ID {
						t.Errorf("task.retried = %+v", e)
					}
				}
			}
			if n != 1 {
				t.Errorf("request %s: task retried %d times, want once", id, n)
			}
		}
		got, err := st.GetBulkRetry(ctx, b.ID)
		if err != nil || got.Retried != len(ids) || got.FinishedAt.IsZero() {
			t.Errorf("bulk retry = %+v, %v; want %d retried and finished", got, err, len(ids))
		}
	})
}

// TestManualTargetAttestedByOperator: a manual target's task waits for its
// owner; an attestation naming an object the target does not have is
// refused, a good one ends the task with the attested counts, and the
// receipt says who attested them instead of calling them verified.
func TestManualTargetAttestedByOperator(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		kr := testdb.Keyring(t)
		signer, _, err := audit.LoadSigner(ctx, st, kr, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Signer = signer
		archive, err := manual.New(manual.Options{Owner: "records-office", Objects: []string{"letters", "contracts"}})
		if err != nil {
			t.Fatal(err)
		}
		db := newMemTarget()
		db.put(email, 1)
		p := start(t, st, cfg, Target{"db", db}, Target{"archive", archive})
		id := submit(t, st, p, email)

		deadline := time.Now().Add(waitTimeout)
		for {
			w, err := st.TaskWait(ctx, id, "archive")
			if err != nil {
				t.Fatal(err)
			}
			if !w.PendingSince.IsZero() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the manual task never waited")
			}
			time.Sleep(20 * time.Millisecond)
		}
		r := waitStatus(t, st, id, lethe.StatusRunning, lethe.StageErase)
		if task := taskOf(t, r, "archive"); task.State != lethe.TaskRunning {
			t.Fatalf("manual task = %+v, want running (waiting)", task)
		}

		by := lethe.Act{Actor: lethe.ActorOperator, ActorID: "rita", Note: "shredded by the records office"}
		same := unchanged(t, st, id)
		_, err = p.AttestTask(ctx, id, "archive", lethe.Report{Items: []lethe.ReportItem{{Object: "invoices", Rows: 1}}}, by)
		wantCode(t, "attesting an object the target lacks", err, lethe.EINVALID)
		_, err = p.AttestTask(ctx, id, "db", lethe.Report{}, by)
		wantCode(t, "attesting a connector target", err, lethe.EINVALID)
		same("refused attestations")

		if _, err := p.AttestTask(ctx, id, "archive", lethe.Report{Items: []lethe.ReportItem{{Object: "letters", Rows: 3}}}, by); err != nil {
			t.Fatal(err)
		}
		r = waitDone(t, st, id, lethe.StatusCompleted)
		if task := taskOf(t, r, "archive"); task.State != lethe.TaskDone || task.Report.Total() != 3 {
			t.Errorf("manual task = %+v, want done with 3 rows", task)
		}
		rc, err := st.GetReceipt(ctx, id, store.Scope{All: true})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := audit.KeyMap(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := audit.Verify(rc.Body, keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range doc.Targets {
			want := ""
			if tr.Target == "archive" {
				want = "rita"
			}
			if tr.AttestedBy != want {
				t.Errorf("receipt target %s attested by %q, want %q", tr.Target, tr.AttestedBy, want)
			}
		}
		_, err = p.AttestTask(ctx, id, "archive", lethe.Report{}, by)
		wantCode(t, "attesting twice", err, lethe.ECONFLICT)
	})
}
