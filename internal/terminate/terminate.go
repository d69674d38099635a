// Package terminate is the one way a deletion request ends. Every move to a
// terminal status (completed and failed in the pipeline, canceled in
// intake, denied by an operator) goes through Path.Terminate, inside the
// transaction that holds the request's row, so the status, the proof and
// the forgetting commit together or not at all.
//
// A failed request is the one end that is not final: an operator may still
// re-drive it, so it keeps its identities sealed until Path.Close closes it
// for good (or retention deletes it), and a re-driven request that ends
// again gets the receipt of that end in place of the first.
package terminate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// StatusEvents stores a request's outbound status event (and queues its
// delivery) inside tx, the transaction that changed the status. The
// pipeline implements it.
type StatusEvents interface {
	StoreStatusEvent(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task) error
}

// Path ends requests. The zero Path issues no receipt, suppresses nothing
// and sends no status event, but still records the end and drops the
// identities' values.
type Path struct {
	// Signer signs receipts; nil issues none (tools and tests without keys).
	Signer *audit.Signer
	// Suppress puts the identities of completed requests on the
	// suppression list.
	Suppress bool
	// Events stores the outbound status event; nil sends none.
	Events StatusEvents
}

// Ending is one move of a request to a terminal status.
type Ending struct {
	// To is the terminal status. Its audit event is lethe.StatusEvent(To).
	To lethe.Status
	// Actor caused the end (ActorSystem when empty); ActorID names a client.
	Actor   lethe.Actor
	ActorID string
	// At is when it ended: the request's CompletedAt, the time of every
	// event it records and the receipt's issue time.
	At time.Time
	// Details of the terminal audit event; never identity values.
	Details map[string]string
	// Outcome, when set, is stored with the end: what the request found
	// (lethe.Outcome). Receipts and status events carry it.
	Outcome lethe.Outcome
	// Reach, when set, replaces the request's reach in the same write.
	Reach *lethe.Reach
}

// ending is what the effects of one Terminate (or Close) share.
type ending struct {
	Ending
	// event is the type of the event that records the end.
	event lethe.EventType
	// keep is true for an end that is not final (failed): the identities
	// stay sealed for a re-drive.
	keep   bool
	req    *lethe.Request
	tasks  []lethe.Task
	hashes []store.IdentityHash // read once, by the first effect that needs them
}

func (e *ending) identityHashes(ctx context.Context, tx store.Tx) ([]store.IdentityHash, error) {
	if e.hashes != nil {
		return e.hashes, nil
	}
	ids, err := tx.RequestIdentityHashes(ctx, e.req.ID)
	if err != nil {
		return nil, err
	}
	e.hashes = ids
	return ids, nil
}

// effect is one thing done to a request that has just ended.
type effect struct {
	name string
	run  func(p Path, ctx context.Context, tx store.Tx, e *ending) error
}

// effects run in this order, which is the rule of ending a request: the
// terminal event first, so the receipt's chain includes it; everything that
// needs the identities' values (the suppression list) or that a receipt
// should cover (the status event) next; the receipt; and the forgetting
// last, since nothing after it can read a value. Close runs the same
// effects but the suppression and the status event: the status does not
// change.
var effects = []effect{
	{"audit", recordEnd},
	{"suppress", suppress},
	{"status_event", storeStatusEvent},
	{"receipt", issueReceipt},
	{"minimise", minimise},
}

// Terminate moves req, read by the caller in tx (LockRequest), from its
// (status, stage) to (e.To, done) and, only if that compare-and-set won,
// runs every effect in order. It reports whether the request ended here;
// false means another transaction moved it first and nothing was done.
// tasks are the request's tasks as the caller read them in tx.
func (p Path) Terminate(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task, e Ending) (bool, error) {
	if !e.To.Terminal() || lethe.StatusEvent(e.To) == "" {
		return false, fmt.Errorf("terminate: %q is not a terminal status", e.To)
	}
	if req.Status.Terminal() {
		return false, nil
	}
	if e.Actor == "" {
		e.Actor = lethe.ActorSystem
	}
	// The store keeps microseconds; the request in hand must match what a
	// read would return, since the receipt is built from it.
	e.At = e.At.UTC().Truncate(time.Microsecond)
	ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
		ID: req.ID, From: []lethe.Status{req.Status}, FromStage: []lethe.Stage{req.Stage},
		To: e.To, ToStage: lethe.StageDone, At: e.At, Outcome: e.Outcome, Reach: e.Reach,
	})
	if err != nil || !ok {
		return false, terminateErr("change state", err)
	}
	req.Status, req.Stage, req.CompletedAt, req.UpdatedAt = e.To, lethe.StageDone, e.At, e.At
	if e.Outcome != "" {
		req.Outcome = e.Outcome
	}
	if e.Reach != nil {
		req.Reach = e.Reach
	}
	end := &ending{Ending: e, event: lethe.StatusEvent(e.To), keep: e.To == lethe.StatusFailed, req: req, tasks: tasks}
	for _, f := range effects {
		if err := f.run(p, ctx, tx, end); err != nil {
			return false, terminateErr(f.name, err)
		}
	}
	return true, nil
}

// Closing is an operator closing a failed request for good.
type Closing struct {
	Actor   lethe.Actor
	ActorID string
	At      time.Time
	Details map[string]string // never identity values
}

// Close ends a failed request for good: req, read by the caller in tx
// (LockRequest), moves from (failed, done) to (failed, closed); the close
// is recorded, the receipt is issued again to cover it, and the
// identities are dropped. It reports whether it closed the request; false
// means it was not a failed request that could be re-driven.
func (p Path) Close(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task, c Closing) (bool, error) {
	if !lethe.Redrivable(req.Status, req.Stage) {
		return false, nil
	}
	if c.Actor == "" {
		c.Actor = lethe.ActorSystem
	}
	c.At = c.At.UTC().Truncate(time.Microsecond)
	ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
		ID: req.ID, From: []lethe.Status{lethe.StatusFailed}, FromStage: []lethe.Stage{lethe.StageDone},
		To: lethe.StatusFailed, ToStage: lethe.StageClosed, At: c.At,
	})
	if err != nil || !ok {
		return false, terminateErr("change state", err)
	}
	req.Stage, req.CompletedAt, req.UpdatedAt = lethe.StageClosed, c.At, c.At
	end := &ending{
		Ending: Ending{To: lethe.StatusFailed, Actor: c.Actor, ActorID: c.ActorID, At: c.At, Details: c.Details},
		event:  lethe.EventRequestClosed, req: req, tasks: tasks,
	}
	for _, f := range effects {
		if f.name == "suppress" || f.name == "status_event" {
			continue
		}
		if err := f.run(p, ctx, tx, end); err != nil {
			return false, terminateErr(f.name, err)
		}
	}
	return true, nil
}

func terminateErr(step string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("terminate: %s: %w", step, err)
}

func recordEnd(_ Path, ctx context.Context, tx store.Tx, e *ending) error {
	return tx.AppendAudit(ctx, &lethe.AuditEvent{
		RequestID: e.req.ID, Time: e.At, Actor: e.Actor, ActorID: e.ActorID,
		Type: e.event, Details: e.Details,
	})
}

// suppress lists a completed request's identities: only a request whose
// erasure succeeded says "this person asked to be erased and was".
func suppress(p Path, ctx context.Context, tx store.Tx, e *ending) error {
	if !p.Suppress || e.To != lethe.StatusCompleted {
		return nil
	}
	n, err := tx.SuppressRequestIdentities(ctx, e.req.ID, e.At)
	if err != nil {
		return err
	}
	return appendSystem(ctx, tx, e, lethe.EventRequestSuppressed, map[string]string{"identities": strconv.Itoa(n)})
}

func storeStatusEvent(p Path, ctx context.Context, tx store.Tx, e *ending) error {
	if p.Events == nil {
		return nil
	}
	return p.Events.StoreStatusEvent(ctx, tx, e.req, e.tasks)
}

// issueReceipt signs the receipt and the partner receipt derived from it
// and records both digests in the chain.
func issueReceipt(p Path, ctx context.Context, tx store.Tx, e *ending) error {
	if p.Signer == nil {
		return nil
	}
	ids, err := e.identityHashes(ctx, tx)
	if err != nil {
		return err
	}
	events, err := tx.ListAudit(ctx, e.req.ID)
	if err != nil {
		return err
	}
	full := audit.NewReceipt(e.req, e.tasks, ids, events)
	doc, digest, err := p.Signer.Sign(full)
	if err != nil {
		return err
	}
	// The partner receipt, what the submitting client is served, names
	// the full one by its digest.
	partner, partnerDigest, err := p.Signer.SignPartner(audit.NewPartnerReceipt(full, e.req.ClientID, digest))
	if err != nil {
		return err
	}
	rc := store.Receipt{RequestID: e.req.ID, ClientID: e.req.ClientID, KeyID: p.Signer.KeyID(), Body: doc, PartnerBody: partner, IssuedAt: e.At}
	err = tx.PutReceipt(ctx, rc)
	if errors.Is(err, store.ErrConflict) {
		// A failed request re-driven (or closed) since its first receipt:
		// this one states how it stands now, and the chain, which this
		// receipt covers, holds the first one's digest.
		err = tx.SupersedeReceipt(ctx, rc)
	}
	if err != nil {
		return err
	}
	return appendSystem(ctx, tx, e, lethe.EventReceiptIssued, map[string]string{
		"key_id": p.Signer.KeyID(), "receipt_sha256": digest, "partner_receipt_sha256": partnerDigest,
	})
}

// minimise drops the plaintext identities, keeping only their keyed
// hashes; a failed request keeps them sealed until it is closed.
func minimise(_ Path, ctx context.Context, tx store.Tx, e *ending) error {
	if e.keep {
		return nil
	}
	ids, err := e.identityHashes(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.DropIdentityValues(ctx, e.req.ID); err != nil {
		return err
	}
	return appendSystem(ctx, tx, e, lethe.EventIdentitiesDropped, map[string]string{
		"hashes_kept": strconv.Itoa(len(ids)),
	})
}

func appendSystem(ctx context.Context, tx store.Tx, e *ending, typ lethe.EventType, details map[string]string) error {
	return tx.AppendAudit(ctx, &lethe.AuditEvent{
		RequestID: e.req.ID, Time: e.At, Actor: lethe.ActorSystem, Type: typ, Details: details,
	})
}
