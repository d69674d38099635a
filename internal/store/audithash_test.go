package store_test

import (
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// The hash encoding is a promise to every verifier of exported audit logs:
// these vectors must never change. They were checked against an
// independent implementation (Python's hashlib over the documented bytes).
func TestAuditHashVectors(t *testing.T) {
	e := &lethe.AuditEvent{
		RequestID: "0190b5a0-0000-7000-8000-000000000001",
		Time:      time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Actor:     lethe.ActorClient,
		ActorID:   "c1",
		Type:      "task.done",
		Details:   map[string]string{"target": "db", "rows": "3"},
		Seq:       99, PrevHash: "ignored", Hash: "ignored",
	}
	for _, tc := range []struct {
		prev, want string
	}{
		{"", "606582a6ae4b59481df7ea3e31ae08901fa3538f27ec14cb46b539a2ca7f2106"},
		{"abc", "f1f1d73e6f6bcbfdb144d2ecfafe464c5a5b78db08b1e0b5cf3594d2f408c80b"},
	} {
		if got := store.AuditHash(tc.prev, e); got != tc.want {
			t.Errorf("AuditHash(%q) = %s, want %s", tc.prev, got, tc.want)
		}
	}
	// nil and empty details hash the same; HTML characters are not escaped.
	a := &lethe.AuditEvent{Type: "x", Actor: lethe.ActorAdmin, Time: e.Time}
	b := &lethe.AuditEvent{Type: "x", Actor: lethe.ActorAdmin, Time: e.Time, Details: map[string]string{}}
	if store.AuditHash("", a) != store.AuditHash("", b) {
		t.Error("nil and empty details hash differently")
	}
	h := &lethe.AuditEvent{Type: "a<b&c>", Actor: lethe.ActorAdmin, Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	// sha256(`{"request_id":"","time":"2025-01-01T00:00:00Z","actor":"admin","actor_id":"","type":"a<b&c>","details":{}}`)
	const want = "c6b641db827957ec1aee7f6b10e1f23652b269acc8a17e93dee8bcc51376b468"
	if got := store.AuditHash("", h); got != want {
		t.Errorf("AuditHash(html chars) = %s, want %s", got, want)
	}
}
