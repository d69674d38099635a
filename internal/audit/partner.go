package audit

import (
	"crypto/ed25519"
	"fmt"

	"github.com/lethe-privacy/lethe"
)

// PartnerReceiptVersion names the partner receipt format.
const PartnerReceiptVersion = "lethe.partner_receipt.v1"

// PartnerReceipt is what the client that submitted a request is given
// when the request ends: the request's state and outcome and each
// target's, signed like the full receipt (same key, same document
// format). It holds no objects, row counts, retention reasons, errors or
// identity hashes: per-table counts and why data was kept tell a partner
// what the company holds on a person. Receipt names the full receipt by
// its Digest, so an auditor holding both can tie them together.
type PartnerReceipt struct {
	Version     string          `json:"version"`
	RequestID   string          `json:"request_id"`
	ClientID    string          `json:"client_id,omitempty"`
	Status      lethe.Status    `json:"status"`
	Outcome     lethe.Outcome   `json:"outcome,omitempty"`
	Regulation  string          `json:"regulation"`
	ReceivedAt  string          `json:"received_at"`
	DueAt       string          `json:"due_at"`
	CompletedAt string          `json:"completed_at"`
	Targets     []PartnerTarget `json:"targets"`
	// Receipt is the hex SHA-256 of the full receipt's canonical form
	// (Digest), the digest the audit chain records for it.
	Receipt string `json:"receipt_sha256"`
}

// PartnerTarget is one target's end as a partner sees it.
type PartnerTarget struct {
	Target  string `json:"target"`
	State   string `json:"state"`
	Outcome string `json:"outcome"` // as the full receipt's (Outcome*)
	// Attested is true when the target's result is a person's word (a
	// manual target), not something lethe could verify.
	Attested bool `json:"attested,omitempty"`
}

// NewPartnerReceipt derives the partner receipt from the full receipt rc,
// whose signed document has the digest digest.
func NewPartnerReceipt(rc *Receipt, clientID, digest string) *PartnerReceipt {
	p := &PartnerReceipt{
		Version: PartnerReceiptVersion, RequestID: rc.RequestID, ClientID: clientID,
		Status: rc.Status, Outcome: rc.Outcome, Regulation: rc.Regulation,
		ReceivedAt: rc.ReceivedAt, DueAt: rc.DueAt, CompletedAt: rc.CompletedAt,
		Targets: make([]PartnerTarget, len(rc.Targets)), Receipt: digest,
	}
	for i, t := range rc.Targets {
		p.Targets[i] = PartnerTarget{Target: t.Target, State: t.State, Outcome: t.Outcome, Attested: t.AttestedBy != ""}
	}
	return p
}

// SignPartner returns the partner receipt document signed by s.
func (s *Signer) SignPartner(p *PartnerReceipt) (doc []byte, digest string, err error) {
	return s.sign(p)
}

// VerifyPartner checks a partner receipt document against the public keys
// by key id, as Verify does a full receipt, and returns it.
func VerifyPartner(doc []byte, keys map[string]ed25519.PublicKey) (*PartnerReceipt, error) {
	canon, version, err := verifySigned(doc, keys)
	if err != nil {
		return nil, err
	}
	if version != PartnerReceiptVersion {
		return nil, fmt.Errorf("partner receipt version %q is not %s", clip(version), PartnerReceiptVersion)
	}
	var p PartnerReceipt
	if err := decodeStrict(canon, &p); err != nil {
		return nil, fmt.Errorf("partner receipt: %w", err)
	}
	return &p, nil
}
