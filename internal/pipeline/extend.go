package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/operators"
	"github.com/lethe-privacy/lethe/internal/store"
)

// MaxExtensionReason bounds an extension's reason, which is told to the
// partner and kept in the register.
const MaxExtensionReason = 1000

// Extend gives an open request its one extension of the due date, within
// the law's bound (lethe.ExtensionBound), for the operator in ctx
// (operators.Actor): the new date, the audit event, the partner's status
// event and the cleared deadline warnings commit together. A second
// extension, one beyond the bound, or one of a closed request is a 4xx
// error and changes nothing.
func (p *Pipeline) Extend(ctx context.Context, x store.ExtendParams) (*lethe.Request, error) {
	reason := strings.TrimSpace(x.Reason)
	switch {
	case reason == "":
		return nil, lethe.Errorf(lethe.EINVALID, "reason is required")
	case utf8.RuneCountInString(reason) > MaxExtensionReason:
		return nil, lethe.Errorf(lethe.EINVALID, "reason must be at most %d characters", MaxExtensionReason)
	case (x.Days == 0) == x.Until.IsZero():
		return nil, lethe.Errorf(lethe.EINVALID, "give either days or until")
	case x.Days < 0:
		return nil, lethe.Errorf(lethe.EINVALID, "days must be positive")
	}
	actor, actorID := operators.Actor(ctx)
	var out *lethe.Request
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		req, err := tx.LockRequest(ctx, x.RequestID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !x.Scope.Sees(req.ClientID)) {
			return lethe.Errorf(lethe.ENOTFOUND, "deletion request not found")
		}
		if err != nil {
			return err
		}
		if req.Status.Terminal() {
			return lethe.Errorf(lethe.ECONFLICT, "request is %s: only an open request can be extended", req.Status)
		}
		if _, err := tx.GetExtension(ctx, req.ID); err == nil {
			return lethe.Errorf(lethe.ECONFLICT, "request was extended already; the law allows one extension")
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		bound, ok := lethe.ExtensionBound(req.Regulation, req.DueAt)
		if !ok {
			return lethe.Errorf(lethe.EINVALID, "regulation %s allows no extension", req.Regulation)
		}
		due := x.Until.UTC()
		if x.Days > 0 {
			if x.Days > 366 {
				return lethe.Errorf(lethe.EINVALID, "days beyond the law's bound: %s allows until %s", req.Regulation, bound.UTC().Format(time.RFC3339))
			}
			due = req.DueAt.Add(time.Duration(x.Days) * 24 * time.Hour)
		}
		if !due.After(req.DueAt) {
			return lethe.Errorf(lethe.EINVALID, "the new due date must be after the current one (%s)", req.DueAt.UTC().Format(time.RFC3339))
		}
		if due.After(bound) {
			return lethe.Errorf(lethe.EINVALID, "beyond the law's bound: %s allows until %s", req.Regulation, bound.UTC().Format(time.RFC3339))
		}
		now := p.now()
		ext := store.Extension{
			RequestID: req.ID, PreviousDue: req.DueAt, Due: due, Reason: reason,
			Actor: actor, ActorID: actorID, At: now,
		}
		done, err := tx.ExtendRequest(ctx, ext)
		if err != nil {
			return err
		}
		if !done {
			return lethe.Errorf(lethe.ECONFLICT, "request was extended already; the law allows one extension")
		}
		// The reason is free text: it goes to the partner and the
		// register, not into the audit chain, which must never hold a
		// value that could name the subject.
		if err := tx.AppendAudit(ctx, &lethe.AuditEvent{
			RequestID: req.ID, Time: now, Actor: actor, ActorID: actorID, Type: lethe.EventRequestExtended,
			Details: map[string]string{
				"previous_due_at": req.DueAt.UTC().Format(time.RFC3339),
				"due_at":          due.UTC().Format(time.RFC3339),
			},
		}); err != nil {
			return fmt.Errorf("extend: %w", err)
		}
		req.DueAt = due
		tasks, err := tx.ListTasks(ctx, req.ID)
		if err != nil {
			return err
		}
		if err := p.storeEvent(ctx, tx, req, tasks, CallbackExtendedType, &callbackExtension{
			PreviousDueAt: rfc3339(ext.PreviousDue), DueAt: rfc3339(due), Reason: reason,
		}); err != nil {
			return err
		}
		req.Tasks = tasks
		out = req
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
