package pipeline

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/manual"
	"github.com/lethe-privacy/lethe/internal/store"
)

// countedManual counts the erase calls of a manual target: each is one
// look at the waiting task, so a test knows the job ran again.
type countedManual struct {
	*manual.Connector
	calls atomic.Int64
}

func (c *countedManual) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	c.calls.Add(1)
	return c.Connector.Erase(ctx, s)
}

// reminderView is a reminder body as a receiver reads it.
type reminderView struct {
	ID, Type, RequestID, Target, Owner, DueAt, OccurredAt string
	Reminder                                              int
	Objects                                               []string
	Attest                                                struct{ API, CLI string }
}

func (r *reminderView) UnmarshalJSON(b []byte) error {
	var v struct {
		ID         string   `json:"id"`
		Type       string   `json:"type"`
		Reminder   int      `json:"reminder"`
		RequestID  string   `json:"request_id"`
		Target     string   `json:"target"`
		Owner      string   `json:"owner"`
		Objects    []string `json:"objects"`
		DueAt      string   `json:"due_at"`
		OccurredAt string   `json:"occurred_at"`
		Attest     struct {
			API string `json:"api"`
			CLI string `json:"cli"`
		} `json:"attest"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = reminderView{ID: v.ID, Type: v.Type, RequestID: v.RequestID, Target: v.Target, Owner: v.Owner, DueAt: v.DueAt,
		OccurredAt: v.OccurredAt, Reminder: v.Reminder, Objects: v.Objects}
	r.Attest.API, r.Attest.CLI = v.Attest.API, v.Attest.CLI
	return nil
}

// TestManualTaskReminders: while a manual task waits, its owner's
// remind_url gets a signed reminder when the task starts waiting and then
// one per remind_every on the pipeline's clock (the job looking again
// sooner sends nothing), each audited and naming no identity; they stop
// once the task is attested. The partner's callbacks neither get them nor
// see gaps in their sequence.
func TestManualTaskReminders(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		clock := &testClock{t: t0}
		cfg := callbackConfig() // loopback receivers explicitly allowed
		cfg.Now = clock.Now
		cfg.PendingMinWait = 10 * time.Millisecond
		// remind_every is short in real time so the waiting task's job
		// looks again often; whether a reminder is due is decided on
		// the injected clock, which the test moves.
		const every = 150 * time.Millisecond
		const within = 100 * time.Hour
		owner, partner := newReceiver(t, always(http.StatusOK)), newReceiver(t, always(http.StatusNoContent))
		m, err := manual.New(manual.Options{Owner: "records-office", Objects: []string{"letters", "contracts"},
			ConfirmWithin: within, RemindEvery: every, RemindURL: owner.srv.URL + "/reminders"})
		if err != nil {
			t.Fatal(err)
		}
		archive := &countedManual{Connector: m}
		db := newMemTarget()
		db.put(email, 1)
		p := start(t, st, cfg, Target{"db", db}, Target{"archive", archive})
		client := newClientWithSecret(t, st, clientSecret)
		id := submitWithCallback(t, st, p, client, partner.srv.URL+"/hooks/lethe", email)

		reminded := func() []lethe.AuditEvent {
			t.Helper()
			es, err := st.ListAudit(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var out []lethe.AuditEvent
			for _, e := range es {
				if e.Type == lethe.EventTaskReminded {
					out = append(out, e)
				}
			}
			return out
		}
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			deadline := time.Now().Add(waitTimeout)
			for !ok() {
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for %s", what)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		// lookedAgain waits until the waiting task's job has run n more
		// times, on a clock that did not move.
		lookedAgain := func(n int64) {
			t.Helper()
			from := archive.calls.Load()
			waitFor("the task to be looked at again", func() bool { return archive.calls.Load() >= from+n })
		}

		waitFor("the first reminder", func() bool { return len(reminded()) == 1 && len(owner.deliveries()) == 1 })
		lookedAgain(3)
		if n := len(reminded()); n != 1 {
			t.Fatalf("%d reminders before remind_every passed on the clock, want 1", n)
		}
		clock.Set(t0.Add(every))
		waitFor("the second reminder", func() bool { return len(reminded()) == 2 && len(owner.deliveries()) == 2 })
		clock.Set(t0.Add(every + every/2))
		lookedAgain(3)
		if n := len(reminded()); n != 2 {
			t.Fatalf("%d reminders half an interval after the second, want 2", n)
		}
		clock.Set(t0.Add(2 * every))
		waitFor("the third reminder", func() bool { return len(reminded()) == 3 && len(owner.deliveries()) == 3 })

		// Attested: the task ends and the reminders stop.
		by := lethe.Act{Actor: lethe.ActorOperator, ActorID: "rita"}
		if _, err := p.AttestTask(ctx, id, "archive", lethe.Report{Items: []lethe.ReportItem{{Object: "letters", Rows: 2}}}, by); err != nil {
			t.Fatal(err)
		}
		waitDone(t, st, id, lethe.StatusCompleted)
		clock.Set(t0.Add(10 * every))
		waitIdle(t, p)
		calls := archive.calls.Load()
		time.Sleep(3 * every) // a job still looking would have run by now
		if n, c := len(reminded()), archive.calls.Load(); n != 3 || c != calls {
			t.Errorf("after the attestation: %d reminders, %d more looks; want 3 and none", n, c-calls)
		}

		events := reminded()
		for i, e := range events {
			want := t0.Add(time.Duration(i) * every)
			if e.Actor != lethe.ActorSystem || !e.Time.Equal(want) || e.Details["target"] != "archive" ||
				e.Details["owner"] != "records-office" || e.Details["reminder"] != string(rune('1'+i)) {
				t.Errorf("reminder event %d = %+v, want at %v", i, e, want)
			}
		}
		got := owner.deliveries()
		if len(got) != 3 {
			t.Fatalf("owner got %d deliveries, want 3", len(got))
		}
		seen := map[int]bool{}
		for i, d := range got {
			if !verifySignature(d.sig, d.body, adminSecret) {
				t.Errorf("reminder %d: signature %q does not verify with the admin callback secret", i, d.sig)
			}
			if verifySignature(d.sig, d.body, clientSecret) {
				t.Errorf("reminder %d is signed with the partner's secret", i)
			}
			assertNoValue(t, "reminder body", string(d.body), email)
			var b reminderView
			if err := json.Unmarshal(d.body, &b); err != nil {
				t.Fatal(err)
			}
			if b.ID != d.eventID || b.Type != ReminderEventType || b.RequestID != id || b.Target != "archive" || b.Owner != "records-office" ||
				strings.Join(b.Objects, ",") != "letters,contracts" || !strings.Contains(b.Attest.API, "/v1/deletion-requests/"+id+"/tasks/archive/attest") ||
				!strings.HasPrefix(b.Attest.CLI, "lethe tasks attest "+id+" --target archive") {
				t.Errorf("reminder %d = %+v", i, b)
			}
			if b.Reminder < 1 || b.Reminder > 3 || seen[b.Reminder] || b.OccurredAt != rfc3339(t0.Add(time.Duration(b.Reminder-1)*every)) {
				t.Errorf("reminder %d: number %d at %s", i, b.Reminder, b.OccurredAt)
			}
			seen[b.Reminder] = true
			due, err := time.Parse(time.RFC3339Nano, b.DueAt)
			if err != nil || !due.After(t0) || due.After(t0.Add(within)) {
				t.Errorf("reminder %d: due_at %q, want the task's deadline (%s from its start)", i, b.DueAt, within)
			}
		}
		// The partner's callbacks: running and completed, sequence 1 and
		// 2, no reminder among them.
		waitCallbacks(t, st, id, 5) // 3 reminders and 2 status events, all settled
		checkDeliveries(t, partner.deliveries(), id, clientSecret, lethe.StatusRunning, lethe.StatusCompleted)
		for _, d := range partner.deliveries() {
			if strings.Contains(string(d.body), ReminderEventType) {
				t.Errorf("the partner got a reminder: %s", d.body)
			}
		}
	})
}

// TestManualTaskReminderGuarded: a reminder to an address the callback
// guard refuses (the default: public addresses only) is not delivered; the
// attempt says why, as for a status callback.
func TestManualTaskReminderGuarded(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		cfg := callbackConfig()
		cfg.Callbacks.Guard = nil // netguard.Strict: loopback refused
		cfg.PendingMinWait = 10 * time.Millisecond
		owner := newReceiver(t, always(http.StatusOK))
		m, err := manual.New(manual.Options{Owner: "records-office", Objects: []string{"letters"},
			RemindEvery: time.Hour, RemindURL: owner.srv.URL + "/reminders"})
		if err != nil {
			t.Fatal(err)
		}
		p := start(t, st, cfg, Target{"archive", m})
		id := submit(t, st, p, email)
		deadline := time.Now().Add(waitTimeout)
		for {
			es, err := st.ListCallbackEvents(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 1 && len(es[0].Attempts) > 0 {
				e := es[0]
				if e.Format != store.CallbackFormatReminder || e.Seq != -1 || e.Attempts[0].Error != classForbiddenAddr {
					t.Errorf("reminder event = %+v, attempts %+v; want seq -1 refused as forbidden_address", e, e.Attempts)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no refused reminder attempt: %+v", es)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := len(owner.deliveries()); n != 0 {
			t.Errorf("a refused address got %d reminders", n)
		}
	})
}
