package audit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// CloseRequest does what ends every request, inside the transaction that
// moved it to a terminal status (after that change's audit event), so that
// the status, the receipt and the forgetting commit together or not at all:
//
//  1. issue the receipt, signed by signer, and record its digest in the
//     chain (skipped when signer is nil: tools and tests without keys);
//  2. drop the plaintext identities, keeping only their keyed hashes.
//
// Anything that needs the identities' values must run before it.
func CloseRequest(ctx context.Context, tx store.Tx, signer *Signer, now time.Time, requestID string) error {
	r, err := tx.GetRequest(ctx, requestID, store.Scope{All: true})
	if err != nil {
		return fmt.Errorf("close request: %w", err)
	}
	if !r.Status.Terminal() {
		return fmt.Errorf("close request: request is %s, not terminal", r.Status)
	}
	ids, err := tx.RequestIdentityHashes(ctx, requestID)
	if err != nil {
		return fmt.Errorf("close request: %w", err)
	}
	if signer != nil {
		events, err := tx.ListAudit(ctx, requestID)
		if err != nil {
			return fmt.Errorf("close request: %w", err)
		}
		doc, err := signer.Sign(NewReceipt(r, r.Tasks, ids, events))
		if err != nil {
			return fmt.Errorf("close request: %w", err)
		}
		digest, err := Digest(doc)
		if err != nil {
			return fmt.Errorf("close request: receipt digest: %w", err)
		}
		if err := tx.PutReceipt(ctx, store.Receipt{
			RequestID: requestID, ClientID: r.ClientID, KeyID: signer.KeyID(), Body: doc, IssuedAt: now,
		}); err != nil {
			return fmt.Errorf("close request: %w", err)
		}
		if err := appendSystem(ctx, tx, now, requestID, "receipt.issued", map[string]string{
			"key_id": signer.KeyID(), "receipt_sha256": digest,
		}); err != nil {
			return err
		}
	}
	if err := tx.DropIdentityValues(ctx, requestID); err != nil {
		return fmt.Errorf("close request: %w", err)
	}
	return appendSystem(ctx, tx, now, requestID, "identities.dropped", map[string]string{
		"hashes_kept": strconv.Itoa(len(ids)),
	})
}

func appendSystem(ctx context.Context, tx store.Tx, now time.Time, requestID, typ string, details map[string]string) error {
	if err := tx.AppendAudit(ctx, &lethe.AuditEvent{
		RequestID: requestID, Time: now, Actor: lethe.ActorSystem, Type: typ, Details: details,
	}); err != nil {
		return fmt.Errorf("close request: append audit %s: %w", typ, err)
	}
	return nil
}
