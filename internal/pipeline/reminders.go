package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Reminders of manual targets: while a manual target's task waits for its
// owner's attestation, a reminder is stored as a callback event of format
// store.CallbackFormatReminder, addressed to the target's remind_url, and
// delivered by the status events' machinery (signed with the admin
// callback secret, retried, allow-listed and guarded like any callback).
// The first goes when the task starts waiting, then one every remind_every
// on the pipeline's clock, decided in the transaction that records the
// pending answer: the erase job of a manual task runs every remind_every,
// and the audit chain (task.reminded) says when the last one went, so a
// job run twice or woken early sends nothing more.

// reminded is implemented by manual connectors that send reminders.
type reminded interface {
	attested
	RemindEvery() time.Duration
	RemindURL() string // "" sends none
}

// ReminderEventType is the "type" of a reminder body.
const ReminderEventType = "manual_task.reminder"

// reminderBody is what a reminder receiver gets: which task waits on whom
// and until when, and how to attest it. It names no identity.
type reminderBody struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Reminder     int       `json:"reminder"` // 1, 2, ... for this task
	RequestID    string    `json:"request_id"`
	Target       string    `json:"target"`
	Owner        string    `json:"owner"`
	Objects      []string  `json:"objects"`
	OccurredAt   string    `json:"occurred_at"`
	DueAt        string    `json:"due_at"`         // the task fails if not attested by then
	RequestDueAt string    `json:"request_due_at"` // the law's (or extended) due date
	Attest       attestHow `json:"attest"`
}

// attestHow tells the owner how to attest, by API or CLI.
type attestHow struct {
	API string `json:"api"`
	CLI string `json:"cli"`
}

// remindManual stores the next reminder of a manual task that waits, in
// tx (which has just recorded its pending answer), if one is due: none
// sent for this task yet, or the last one remind_every ago or more.
// deadline is the task's.
func (p *Pipeline) remindManual(ctx context.Context, tx store.Tx, task lethe.Task, conn any, deadline time.Time) error {
	m, ok := conn.(reminded)
	if !ok || m.RemindURL() == "" {
		return nil
	}
	events, err := tx.ListAudit(ctx, task.RequestID)
	if err != nil {
		return fmt.Errorf("reminder: %w", err)
	}
	now := p.now().UTC().Truncate(time.Microsecond)
	sent := 0
	var last time.Time
	for _, e := range events {
		if e.Type == lethe.EventTaskReminded && e.Details["target"] == task.Target {
			sent++
			last = e.Time
		}
	}
	if sent > 0 && now.Sub(last) < m.RemindEvery() {
		return nil
	}
	req, err := tx.GetRequest(ctx, task.RequestID, store.Scope{All: true})
	if err != nil {
		return fmt.Errorf("reminder: %w", err)
	}
	seq, err := tx.NextReminderSeq(ctx, task.RequestID)
	if err != nil {
		return fmt.Errorf("reminder: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("reminder: id: %w", err)
	}
	body := reminderBody{
		ID: id.String(), Type: ReminderEventType, Reminder: sent + 1,
		RequestID: task.RequestID, Target: task.Target, Owner: m.Manual(), Objects: m.Objects(),
		OccurredAt: rfc3339(now), DueAt: rfc3339(deadline), RequestDueAt: rfc3339(req.DueAt),
		Attest: attestHow{
			API: "POST /v1/deletion-requests/" + url.PathEscape(task.RequestID) + "/tasks/" + url.PathEscape(task.Target) + "/attest",
			CLI: "lethe tasks attest " + task.RequestID + " --target " + task.Target + " --count OBJECT=N [--note TEXT]",
		},
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("reminder: encode: %w", err)
	}
	// ClientID "": the deployment's own receiver, signed with the admin
	// callback secret, never with a partner's.
	if err := p.insertEvent(ctx, tx, &store.CallbackEvent{
		ID: body.ID, RequestID: task.RequestID, Seq: seq, Status: req.Status, URL: m.RemindURL(),
		Body: b, Format: store.CallbackFormatReminder, CreatedAt: now,
	}); err != nil {
		return err
	}
	return p.audit(ctx, tx, task.RequestID, lethe.EventTaskReminded, map[string]string{
		"target": task.Target, "owner": m.Manual(), "reminder": strconv.Itoa(sent + 1), "event_id": body.ID,
	})
}
