// Package audit proves what lethe did: it verifies the hash-chained audit
// log and issues and verifies signed receipts.
//
// # Why one chain per request
//
// Each request's events form their own chain: event n stores the hash of
// event n-1 of the same request, and its own hash is SHA-256 over that
// previous hash followed by the event's canonical encoding
// (store.AuditHash). One chain per request rather than one global chain
// because:
//
//   - appends for different requests never wait for each other: a global
//     chain has one head that every transaction of every request would
//     have to lock, serialising the whole pipeline on PostgreSQL;
//   - a request's proof is self-contained: its events and its receipt can
//     be handed to an auditor, verified, and later purged, without the
//     events of any other request (nor the data subjects they concern);
//   - retention can delete a request's whole chain at the end of the legal
//     period without breaking anybody else's.
//
// The trade-off: a chain deleted as a whole, or cut short at its end, is
// not detected by the chain itself. lethe mitigates it three ways:
// every request row must have a chain (VerifyAll reports requests without
// one); the receipt issued when a request closes carries the chain's event
// count and head hash and is signed, so a chain shortened or rewritten after
// that no longer matches its receipt; and the receipt itself is handed to
// the requester (GET .../receipt), so deleting the receipt too does not
// remove the requester's signed copy, which names the head the chain must
// still contain. What remains undetectable by lethe alone is deleting a
// request entirely (row, chain and receipt) before anyone fetched its
// receipt; a global anchor would catch that at the cost of the
// serialisation above, and a database that an attacker can rewrite at will
// is out of reach of any in-database proof anyway.
package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Problem is the first broken link found in one request's chain.
type Problem struct {
	RequestID string
	Seq       int64 // the event where the chain breaks; 0 when not tied to one
	What      string
}

func (p Problem) String() string {
	if p.Seq == 0 {
		return fmt.Sprintf("request %s: %s", p.RequestID, p.What)
	}
	return fmt.Sprintf("request %s, event seq %d: %s", p.RequestID, p.Seq, p.What)
}

// VerifyChain recomputes the hashes of one request's events, given in seq
// order, and returns the first broken link, or nil.
func VerifyChain(requestID string, events []lethe.AuditEvent) *Problem {
	prev := ""
	var prevSeq int64
	for i := range events {
		e := &events[i]
		switch {
		case e.RequestID != requestID:
			return &Problem{requestID, e.Seq, fmt.Sprintf("event belongs to request %q", e.RequestID)}
		case e.Seq <= prevSeq:
			return &Problem{requestID, e.Seq, fmt.Sprintf("seq does not follow seq %d", prevSeq)}
		case e.PrevHash != prev && i == 0:
			return &Problem{requestID, e.Seq, "first event of the chain has a previous hash: earlier events were deleted"}
		case e.PrevHash != prev:
			return &Problem{requestID, e.Seq, fmt.Sprintf("previous hash does not match the hash of event seq %d: an event between them was deleted, or the events were reordered", prevSeq)}
		}
		if got := store.AuditHash(prev, e); got != e.Hash {
			return &Problem{requestID, e.Seq, "hash does not match the event's contents: the event was altered"}
		}
		prev, prevSeq = e.Hash, e.Seq
	}
	return nil
}

// VerifyRequest checks one request's chain and, when the request has a
// receipt, that the receipt verifies under keys and that the chain still
// holds the head the receipt names. It returns nil when all is well.
func VerifyRequest(ctx context.Context, st store.Queries, requestID string, keys map[string]ed25519.PublicKey) (*Problem, error) {
	events, err := st.ListAudit(ctx, requestID)
	if err != nil {
		return nil, err
	}
	if p := VerifyChain(requestID, events); p != nil {
		return p, nil
	}
	rec, err := st.GetReceipt(ctx, requestID, store.Scope{All: true})
	if errors.Is(err, store.ErrNotFound) {
		if len(events) == 0 && requestID != "" {
			if _, err := st.GetRequest(ctx, requestID, store.Scope{All: true}); err == nil {
				return &Problem{RequestID: requestID, What: "request has no audit events: its chain was deleted"}, nil
			}
			return &Problem{RequestID: requestID, What: "no such request, audit chain or receipt"}, nil
		}
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	rc, err := Verify(rec.Body, keys)
	if err != nil {
		return &Problem{RequestID: requestID, What: "receipt: " + err.Error()}, nil
	}
	if rc.RequestID != requestID {
		return &Problem{RequestID: requestID, What: fmt.Sprintf("receipt is for request %q", rc.RequestID)}, nil
	}
	n := rc.Audit.Events
	if n < 1 || n > int64(len(events)) {
		return &Problem{RequestID: requestID, What: fmt.Sprintf("receipt names a chain of %d events, the chain has %d: events were deleted", n, len(events))}, nil
	}
	if events[n-1].Hash != rc.Audit.Head {
		return &Problem{RequestID: requestID, Seq: events[n-1].Seq, What: "receipt's chain head does not match this event: the chain was rewritten"}, nil
	}
	return verifyPartnerReceipt(rec, keys)
}

// verifyPartnerReceipt checks the partner receipt stored beside a full
// one (receipts issued before partner receipts have none): it verifies,
// is for the same request and names the full receipt stored with it.
func verifyPartnerReceipt(rec store.Receipt, keys map[string]ed25519.PublicKey) (*Problem, error) {
	if len(rec.PartnerBody) == 0 {
		return nil, nil
	}
	pr, err := VerifyPartner(rec.PartnerBody, keys)
	if err != nil {
		return &Problem{RequestID: rec.RequestID, What: "partner receipt: " + err.Error()}, nil
	}
	digest, err := Digest(rec.Body)
	if err != nil {
		return nil, err
	}
	if pr.RequestID != rec.RequestID || pr.Receipt != digest {
		return &Problem{RequestID: rec.RequestID, What: "partner receipt does not name the receipt stored with it"}, nil
	}
	return nil, nil
}

// Report is the outcome of VerifyAll.
type Report struct {
	Chains   int // request chains checked (the chain of events of no request included)
	Problems []Problem
}

// verifyPage is how many request ids VerifyAll reads at a time.
const verifyPage = 500

// VerifyAll checks every chain in the store, every receipt's match with
// its chain, and that every request has a chain. It reports one problem
// per broken request.
func VerifyAll(ctx context.Context, st store.Queries, keys map[string]ed25519.PublicKey) (Report, error) {
	var rep Report
	check := func(id string) error {
		p, err := VerifyRequest(ctx, st, id, keys)
		if err != nil {
			return fmt.Errorf("verify request %s: %w", id, err)
		}
		rep.Chains++
		if p != nil {
			rep.Problems = append(rep.Problems, *p)
		}
		return nil
	}
	// Events of no request (request_id "") form a chain of their own.
	global, err := st.ListAudit(ctx, "")
	if err != nil {
		return rep, err
	}
	if len(global) > 0 {
		if err := check(""); err != nil {
			return rep, err
		}
	}
	after := ""
	for {
		ids, err := st.AuditRequestIDs(ctx, after, verifyPage)
		if err != nil {
			return rep, err
		}
		for _, id := range ids {
			if err := check(id); err != nil {
				return rep, err
			}
		}
		if len(ids) < verifyPage {
			break
		}
		after = ids[len(ids)-1]
	}
	orphans, err := st.RequestsWithoutAudit(ctx, verifyPage)
	if err != nil {
		return rep, err
	}
	for _, id := range orphans {
		rep.Problems = append(rep.Problems, Problem{RequestID: id, What: "request or receipt has no audit events: its chain was deleted"})
	}
	return rep, nil
}
