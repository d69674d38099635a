package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Status events: when a request with a callback_url changes status
// (running, completed, failed, canceled), the transaction that changes it
// also stores a status event ("callback" in the API and the store), with
// its body frozen, and inserts a job that delivers it. Delivery is at least once: a receiver may see an event
// twice and deduplicates on its id. docs/callbacks.md is the receiver's
// side of this contract.

// callbackBody is the JSON a receiver gets. It names the request and says
// what happened, never who the request is about.
type callbackBody struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Sequence    int             `json:"sequence"`
	RequestID   string          `json:"request_id"`
	ExternalID  string          `json:"external_id,omitempty"`
	Status      lethe.Status    `json:"status"`
	Outcome     lethe.Outcome   `json:"outcome,omitempty"`
	OccurredAt  string          `json:"occurred_at"`
	ReceivedAt  string          `json:"received_at"`
	DueAt       string          `json:"due_at"`
	CompletedAt string          `json:"completed_at,omitempty"`
	Tasks       callbackTally   `json:"tasks"`
	Targets     []callbackTasks `json:"targets"`
	// Extension is set on events of CallbackExtendedType.
	Extension *callbackExtension `json:"extension,omitempty"`
}

// callbackExtension tells a partner the due date moved, and why: the law
// asks that the subject be told of an extension with its reasons.
type callbackExtension struct {
	PreviousDueAt string `json:"previous_due_at"`
	DueAt         string `json:"due_at"`
	Reason        string `json:"reason"`
}

type callbackTally struct {
	Total   int `json:"total"`
	Pending int `json:"pending"`
	Running int `json:"running"`
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// callbackTasks is one target as a partner sees it: its state and, once
// the task has ended, its outcome (audit.Outcome). No row counts: how many
// rows a table held on a person tells a partner what the company holds.
type callbackTasks struct {
	Target  string          `json:"target"`
	State   lethe.TaskState `json:"state"`
	Outcome string          `json:"outcome,omitempty"`
}

// Callback body "type"s: a status change, and an extension of the due
// date (the status stays as it was).
const (
	CallbackEventType    = "deletion_request.status_changed"
	CallbackExtendedType = "deletion_request.extended"
)

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// StatusChange is what a CallbackFormat renders: a request whose status
// has just changed, its tasks as the transaction sees them, and the
// event's id and sequence.
type StatusChange struct {
	EventID    string
	Sequence   int
	Request    *lethe.Request
	Tasks      []lethe.Task
	OccurredAt time.Time
	// Extension is set when the event tells of an extension of the due
	// date (the status stays as it was): Request.DueAt is the new one.
	Extension *ExtensionChange
}

// ExtensionChange is an extension of a request's due date.
type ExtensionChange struct {
	PreviousDueAt time.Time
	Reason        string
}

// CallbackFormat renders and signs the status events of requests taken by
// an intake profile that speaks a callback protocol of its own (DRP,
// OpenDSR), named by the request's CallbackFormat. Storage, the job,
// retries, the address guard and the attempt log stay the pipeline's.
type CallbackFormat interface {
	// Render returns the body stored with the event, frozen when the
	// status changes. It holds no identity value and not the callback
	// URL, which is sealed apart.
	Render(c StatusChange) ([]byte, error)
	// Prepare returns the bytes sent to url for a stored body and sets
	// the headers that sign them, at each attempt.
	Prepare(body []byte, url string, h http.Header) ([]byte, error)
}

// StoreStatusEvent stores the status event of req, whose status tx has
// just changed, with its body frozen, and queues its delivery in tx.
// tasks are the request's tasks as tx sees them. It does nothing for a
// request without a callback_url. Every terminal status stores its event
// through Terminate; statusMoved stores those of running.
func (p *Pipeline) StoreStatusEvent(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task) error {
	if req.Status == lethe.StatusReceived {
		return nil
	}
	return p.storeEvent(ctx, tx, req, tasks, CallbackEventType, nil)
}

// storeEvent stores one event of type typ for req (nothing without a
// callback_url) and queues its delivery in tx.
func (p *Pipeline) storeEvent(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task, typ string, ext *callbackExtension) error {
	if req.CallbackURL == "" {
		return nil
	}
	seq, err := tx.NextCallbackSeq(ctx, req.ID)
	if err != nil {
		return fmt.Errorf("status event: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("status event: id: %w", err)
	}
	now := p.now().UTC().Truncate(time.Microsecond)
	if req.CallbackFormat != "" {
		f := p.cfg.Callbacks.Formats[req.CallbackFormat]
		if f == nil {
			// The profile that took the request is no longer served. Its
			// callback is dropped rather than erasure held up for it.
			p.log.Warn("pipeline: status event dropped: its callback format is not configured",
				slog.String("request_id", req.ID), slog.String("format", req.CallbackFormat))
			return nil
		}
		c := StatusChange{EventID: id.String(), Sequence: seq, Request: req, Tasks: tasks, OccurredAt: now}
		if ext != nil {
			prev, _ := time.Parse(time.RFC3339Nano, ext.PreviousDueAt)
			c.Extension = &ExtensionChange{PreviousDueAt: prev, Reason: ext.Reason}
		}
		b, err := f.Render(c)
		if err != nil {
			return fmt.Errorf("status event: render %s: %w", req.CallbackFormat, err)
		}
		return p.insertEvent(ctx, tx, &store.CallbackEvent{
			ID: id.String(), RequestID: req.ID, Seq: seq, Status: req.Status, ClientID: req.ClientID,
			URL: req.CallbackURL, Body: b, Format: req.CallbackFormat, CreatedAt: now,
		})
	}
	body := callbackBody{
		ID:          id.String(),
		Type:        typ,
		Sequence:    seq,
		RequestID:   req.ID,
		ExternalID:  req.ExternalID,
		Status:      req.Status,
		Outcome:     req.Outcome,
		OccurredAt:  rfc3339(now),
		ReceivedAt:  rfc3339(req.ReceivedAt),
		DueAt:       rfc3339(req.DueAt),
		CompletedAt: rfc3339(req.CompletedAt),
		Targets:     make([]callbackTasks, 0, len(tasks)),
		Extension:   ext,
	}
	for _, t := range tasks {
		body.Tasks.Total++
		switch t.State {
		case lethe.TaskPending:
			body.Tasks.Pending++
		case lethe.TaskRunning:
			body.Tasks.Running++
		case lethe.TaskDone:
			body.Tasks.Done++
		case lethe.TaskFailed:
			body.Tasks.Failed++
		case lethe.TaskSkipped:
			body.Tasks.Skipped++
		}
		ct := callbackTasks{Target: t.Target, State: t.State}
		if t.State.Terminal() {
			ct.Outcome = audit.Outcome(t)
		}
		body.Targets = append(body.Targets, ct)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("status event: encode: %w", err)
	}
	return p.insertEvent(ctx, tx, &store.CallbackEvent{
		ID: body.ID, RequestID: req.ID, Seq: seq, Status: req.Status, ClientID: req.ClientID,
		URL: req.CallbackURL, Body: b, CreatedAt: now,
	})
}

// insertEvent stores ev and queues its delivery in tx.
func (p *Pipeline) insertEvent(ctx context.Context, tx store.Tx, ev *store.CallbackEvent) error {
	if err := tx.CreateCallbackEvent(ctx, ev); err != nil {
		return fmt.Errorf("status event: %w", err)
	}
	if err := p.eng.insertTx(ctx, tx, []river.InsertManyParams{callbackJob(ev.ID)}); err != nil {
		return fmt.Errorf("status event: %w", err)
	}
	return nil
}

// statusMoved stores the status event of a request that tx moved to a
// status that keeps it open (running).
func (p *Pipeline) statusMoved(ctx context.Context, tx store.Tx, requestID string) error {
	// The row is already locked by the status change.
	req, err := tx.LockRequest(ctx, requestID)
	if err != nil {
		return fmt.Errorf("status event: %w", err)
	}
	if req.CallbackURL == "" {
		return nil // one cheap read for requests without a callback
	}
	tasks, err := tx.ListTasks(ctx, requestID)
	if err != nil {
		return fmt.Errorf("status event: %w", err)
	}
	return p.StoreStatusEvent(ctx, tx, req, tasks)
}
