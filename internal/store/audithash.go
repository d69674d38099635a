package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/lethe-privacy/lethe"
)

// AuditHash returns the chain hash of e: hex SHA-256 of prevHash followed
// by the canonical JSON of the event's recorded fields. Seq, PrevHash and
// Hash are not part of it: Seq is assigned by the database after the hash
// is known, and the previous hash enters as the prefix. Stores use it to
// fill Hash; verifiers recompute it to prove nothing was altered, so its
// encoding must never change.
func AuditHash(prevHash string, e *lethe.AuditEvent) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write(canonicalAudit(e))
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalAudit encodes e as compact JSON with the keys request_id, time,
// actor, actor_id, type, details in that order, details' keys sorted, no
// HTML escaping, and time as RFC 3339 in UTC at microsecond precision with
// trailing zeros dropped (Go's RFC3339Nano), so a verifier in any language
// can rebuild the exact bytes.
func canonicalAudit(e *lethe.AuditEvent) []byte {
	details := e.Details
	if details == nil {
		// nil and empty mean the same thing and must hash the same.
		details = map[string]string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		RequestID string            `json:"request_id"`
		Time      string            `json:"time"`
		Actor     lethe.Actor       `json:"actor"`
		ActorID   string            `json:"actor_id"`
		Type      string            `json:"type"`
		Details   map[string]string `json:"details"`
	}{
		RequestID: e.RequestID,
		Time:      e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
		Actor:     e.Actor,
		ActorID:   e.ActorID,
		Type:      string(e.Type),
		Details:   details,
	})
	if err != nil {
		// Strings and a map of strings always marshal.
		panic("store: marshal audit event: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
