package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// ReceiptVersion names the receipt format; a verifier refuses others.
const ReceiptVersion = "lethe.receipt.v1"

// Algorithm is the only signature algorithm receipts use.
const Algorithm = "ed25519"

// Receipt is what lethe attests about one closed request. It holds keyed
// hashes of the identities (HMAC-SHA256 under the deployment's secret key,
// the same hashes the store keeps), never their values. Times are RFC 3339
// in UTC with up to microsecond precision.
type Receipt struct {
	Version   string       `json:"version"`
	RequestID string       `json:"request_id"`
	Status    lethe.Status `json:"status"` // completed, failed or canceled
	// Outcome is what the request found (lethe.Outcome): erased,
	// no_match, ambiguous_subject; absent for other ends.
	Outcome     lethe.Outcome  `json:"outcome,omitempty"`
	Regulation  string         `json:"regulation"`
	ReceivedAt  string         `json:"received_at"`
	DueAt       string         `json:"due_at"`
	CompletedAt string         `json:"completed_at"`
	Identities  []IdentityHash `json:"identities"`
	Targets     []TargetResult `json:"targets"`
	// Retained lists, across targets, what was kept and why (the items
	// of action "retain"), so a reader need not search the targets.
	Retained []RetainedItem `json:"retained"`
	// Audit is the request's audit chain as it stood when the receipt was
	// issued: deleting or rewriting the chain afterwards no longer matches.
	Audit ChainHead `json:"audit"`
}

// IdentityHash is one identity of the request, hashed.
type IdentityHash struct {
	Type   string `json:"type"`
	Source string `json:"source"` // given or linked
	Hash   string `json:"hash"`   // hex HMAC-SHA256, keyed
}

// TargetResult is what happened on one target.
type TargetResult struct {
	Target string `json:"target"`
	State  string `json:"state"`
	// Outcome says in one word what the target's items add up to (see
	// Outcome*); Error is the task's redacted error when it failed.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Reason says why a task was skipped (by an operator, or because the
	// request ended first).
	Reason string `json:"reason,omitempty"`
	// AttestedBy names the operator who attested what was done on a
	// target lethe cannot reach or verify (a manual target): its items are
	// that person's word, not counts a connector confirmed.
	AttestedBy string       `json:"attested_by,omitempty"`
	Attempts   int          `json:"attempts"`
	Items      []ReportItem `json:"items"`
}

// What happened on one target, as a receipt states it.
const (
	OutcomeErased        = "erased"        // rows deleted (pseudonymized ones may come with them)
	OutcomePseudonymized = "pseudonymized" // rows rewritten, none deleted
	OutcomeRetained      = "retained"      // only kept rows (the items say why and until when)
	OutcomeNotFound      = "not_found"     // nothing of the subject's was there
	OutcomeForwarded     = "forwarded"     // passed on; the items carry the receiver's job ids
	OutcomeFailed        = "failed"        // the items say what was changed before it failed
	OutcomeSkipped       = "skipped"       // not run (the request failed or ended first)
)

// Outcome is what a task's state and report add up to. Only changes the
// target confirmed count: a report's lines are measured, never planned.
func Outcome(t lethe.Task) string {
	switch t.State {
	case lethe.TaskFailed:
		return OutcomeFailed
	case lethe.TaskSkipped:
		return OutcomeSkipped
	}
	rows := map[lethe.Action]int64{}
	for _, it := range t.Report.Items {
		rows[it.Action] += it.Rows
	}
	switch {
	case rows[lethe.ActionForward] > 0:
		return OutcomeForwarded
	case rows[lethe.ActionDelete] > 0:
		return OutcomeErased
	case rows[lethe.ActionPseudonymize] > 0:
		return OutcomePseudonymized
	case rows[lethe.ActionRetain] > 0:
		return OutcomeRetained
	}
	return OutcomeNotFound
}

// ReportItem is one object (table, key pattern...) of a target.
type ReportItem struct {
	Object string `json:"object"`
	Action string `json:"action"`
	Rows   int64  `json:"rows"` // what the target confirmed it changed (retain: found kept)
	Reason string `json:"reason,omitempty"`
	Until  string `json:"until,omitempty"`
	// LowerBound marks rows that may be short (see lethe.ReportItem).
	LowerBound bool   `json:"lower_bound,omitempty"`
	Reference  string `json:"reference,omitempty"` // the receiver's job ids, for forwarded items
}

// RetainedItem is one object kept on a target, with the reason.
type RetainedItem struct {
	Target string `json:"target"`
	Object string `json:"object"`
	Rows   int64  `json:"rows"`
	Reason string `json:"reason"`
	Until  string `json:"until,omitempty"`
}

// ChainHead is the state of a request's audit chain.
type ChainHead struct {
	Events int64  `json:"events"` // how many events the chain had
	Head   string `json:"head"`   // hash of the last of them
}

// Document is a receipt as issued, stored and served: the receipt in its
// canonical form and the signature over exactly those bytes.
type Document struct {
	Receipt   json.RawMessage `json:"receipt"`
	Signature Signature       `json:"signature"`
}

// Signature is an Ed25519 signature by the key KeyID.
type Signature struct {
	Algorithm string `json:"alg"`
	KeyID     string `json:"key_id"`
	Value     string `json:"value"` // standard base64, 64 bytes
}

// FormatTime is how receipts write times.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// NewReceipt builds the receipt of a closed request from its row, its
// tasks, its identities' hashes and its audit events (as they are after
// the terminal event).
func NewReceipt(r *lethe.Request, tasks []lethe.Task, ids []store.IdentityHash, events []lethe.AuditEvent) *Receipt {
	rc := &Receipt{
		Version:     ReceiptVersion,
		RequestID:   r.ID,
		Status:      r.Status,
		Outcome:     r.Outcome,
		Regulation:  string(r.Regulation),
		ReceivedAt:  FormatTime(r.ReceivedAt),
		DueAt:       FormatTime(r.DueAt),
		CompletedAt: FormatTime(r.CompletedAt),
		Identities:  make([]IdentityHash, len(ids)),
		Targets:     make([]TargetResult, len(tasks)),
		Retained:    []RetainedItem{},
	}
	for i, id := range ids {
		rc.Identities[i] = IdentityHash{Type: id.Type, Source: id.Source, Hash: id.Hash}
	}
	attested := map[string]string{}
	for _, e := range events {
		if e.Type == lethe.EventTaskAttested {
			attested[e.Details["target"]] = e.ActorID
		}
	}
	for i, t := range tasks {
		tr := TargetResult{Target: t.Target, State: string(t.State), Outcome: Outcome(t), Attempts: t.Attempts, Items: make([]ReportItem, len(t.Report.Items))}
		switch t.State {
		case lethe.TaskFailed:
			tr.Error = t.LastError
		case lethe.TaskSkipped:
			tr.Reason = t.LastError
		case lethe.TaskDone:
			tr.AttestedBy = attested[t.Target]
		}
		for j, it := range t.Report.Items {
			tr.Items[j] = ReportItem{Object: it.Object, Action: string(it.Action), Rows: it.Rows, Reason: it.Reason, Until: FormatTime(it.Until),
				LowerBound: it.LowerBound, Reference: it.Reference}
			if it.Action == lethe.ActionRetain {
				rc.Retained = append(rc.Retained, RetainedItem{
					Target: t.Target, Object: it.Object, Rows: it.Rows, Reason: it.Reason, Until: FormatTime(it.Until),
				})
			}
		}
		rc.Targets[i] = tr
	}
	if n := len(events); n > 0 {
		rc.Audit = ChainHead{Events: int64(n), Head: events[n-1].Hash}
	}
	return rc
}

// Sign returns the receipt document signed by s, and its digest (what
// Digest returns for it, from the canonical form just signed rather than
// by reading the document back).
func (s *Signer) Sign(rc *Receipt) (doc []byte, digest string, err error) { return s.sign(rc) }

// sign signs the canonical form of any receipt (full or partner) in the
// one document format both share.
func (s *Signer) sign(rc any) ([]byte, string, error) {
	raw, err := json.Marshal(rc)
	if err != nil {
		return nil, "", fmt.Errorf("sign receipt: %w", err)
	}
	canon, err := Canonical(raw)
	if err != nil {
		return nil, "", fmt.Errorf("sign receipt: %w", err)
	}
	doc := Document{
		Receipt: canon,
		Signature: Signature{
			Algorithm: Algorithm,
			KeyID:     s.keyID,
			Value:     base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, canon)),
		},
	}
	// No HTML escaping: the receipt member stays byte for byte its
	// canonical form, which a reader can then check without re-encoding.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, "", fmt.Errorf("sign receipt: %w", err)
	}
	sum := sha256.Sum256(canon)
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), hex.EncodeToString(sum[:]), nil
}

// Digest is the hex SHA-256 of a receipt's canonical form; the audit chain
// records it when the receipt is issued.
func Digest(doc []byte) (string, error) {
	var d Document
	if err := json.Unmarshal(doc, &d); err != nil {
		return "", err
	}
	canon, err := Canonical(d.Receipt)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

// maxDocument bounds what Verify reads; real receipts are a few KiB.
const maxDocument = 4 << 20

// ErrUnknownKey is returned when a receipt is signed by a key not given.
var ErrUnknownKey = errors.New("receipt is signed by an unknown key")

// ErrPartnerReceipt is returned by Verify for a document that verifies but
// is a partner receipt; VerifyPartner reads those.
var ErrPartnerReceipt = errors.New("the document is a partner receipt (" + PartnerReceiptVersion + ")")

// Verify checks a receipt document against the public keys by key id and
// returns the receipt. It accepts only documents whose receipt's canonical
// form carries a valid signature by one of keys: any change to a value,
// added, removed or duplicated member, is refused.
func Verify(doc []byte, keys map[string]ed25519.PublicKey) (*Receipt, error) {
	canon, version, err := verifySigned(doc, keys)
	if err != nil {
		return nil, err
	}
	if version == PartnerReceiptVersion {
		return nil, ErrPartnerReceipt
	}
	if version != ReceiptVersion {
		return nil, fmt.Errorf("receipt version %q is not %s", clip(version), ReceiptVersion)
	}
	var rc Receipt
	if err := decodeStrict(canon, &rc); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	return &rc, nil
}

// verifySigned checks a document's envelope and signature and returns the
// signed receipt's canonical bytes and its version member.
func verifySigned(doc []byte, keys map[string]ed25519.PublicKey) ([]byte, string, error) {
	if len(doc) > maxDocument {
		return nil, "", errors.New("receipt is too large")
	}
	var d Document
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, "", fmt.Errorf("receipt is not a receipt document: %w", err)
	}
	// The envelope must itself be unambiguous: Canonical refuses duplicate
	// members, which encoding/json would silently resolve.
	if _, err := Canonical(doc); err != nil {
		return nil, "", fmt.Errorf("receipt document: %w", err)
	}
	if d.Signature.Algorithm != Algorithm {
		return nil, "", fmt.Errorf("receipt signature algorithm %q is not %s", clip(d.Signature.Algorithm), Algorithm)
	}
	pub, ok := keys[d.Signature.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("%w (key id %q)", ErrUnknownKey, clip(d.Signature.KeyID))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(d.Signature.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, "", errors.New("receipt signature is not 64 bytes of base64")
	}
	canon, err := Canonical(d.Receipt)
	if err != nil {
		return nil, "", fmt.Errorf("receipt: %w", err)
	}
	if !ed25519.Verify(pub, canon, sig) {
		return nil, "", errors.New("receipt signature does not verify: the receipt was altered or signed by another key")
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(canon, &v); err != nil {
		return nil, "", fmt.Errorf("receipt: %w", err)
	}
	return canon, v.Version, nil
}

func decodeStrict(canon []byte, v any) error {
	rd := json.NewDecoder(bytes.NewReader(canon))
	rd.DisallowUnknownFields()
	return rd.Decode(v)
}

func encodeKey(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ParsePublicKey reads a public key as standard or URL base64, or hex, of
// its 32 raw bytes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := seal.ParseKey(s)
	if err != nil {
		return nil, errors.New("public key must be 32 bytes as 64 hex characters or base64")
	}
	return ed25519.PublicKey(b), nil
}
