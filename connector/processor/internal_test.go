package processor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/redact"
)

func TestRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"50/10m":   {N: 50, Per: 10 * time.Minute, set: true},
		" 3 / 1s ": {N: 3, Per: time.Second, set: true},
		"0":        {set: true},
	} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err != nil || r != want {
			t.Errorf("%q: %+v, %v; want %+v", in, r, err, want)
		}
	}
	for _, in := range []string{"", "50", "50/", "/10m", "-1/1m", "5/0s", "5/48h", "x/1m"} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if s := PerWindow(50, 10*time.Minute).String(); s != "50/10m" {
		t.Errorf("String = %s", s)
	}
}

// TestWindow: at most N calls in any window, however they are spread.
func TestWindow(t *testing.T) {
	w := newWindow(PerWindow(3, time.Minute))
	t0 := time.Unix(1_700_000_000, 0)
	for i, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		if _, ok := w.take(t0.Add(at)); !ok {
			t.Fatalf("call %d refused", i)
		}
	}
	if wait, ok := w.take(t0.Add(30 * time.Second)); ok || wait != 30*time.Second {
		t.Fatalf("4th call: ok %v, wait %s; want refused for 30s", ok, wait)
	}
	if _, ok := w.take(t0.Add(time.Minute)); !ok {
		t.Fatal("call after the first left the window refused")
	}
	if wait, ok := w.take(t0.Add(time.Minute + time.Second)); ok || wait != 9*time.Second {
		t.Fatalf("next call: ok %v, wait %s; want refused for 9s", ok, wait)
	}
}

// TestErrorText: a processor's message is redacted before it becomes part
// of an error: the subject's values in any case, other people's emails,
// line breaks, and length.
func TestErrorText(t *testing.T) {
	ids := []lethe.Identity{{Type: lethe.IdentityEmail, Value: "ada@example.com"}}
	got := errorText([]byte(`{"error":{"message":"user ADA@Example.com\nnot found, see bob@example.org"}}`), ids)
	if got != "user <redacted> not found, see <redacted>" {
		t.Errorf("errorText = %q", got)
	}
	long := errorText([]byte(`{"error":{"message":"`+strings.Repeat("é", 600)+`"}}`), nil)
	if len(long) > redact.MaxLen+3 {
		t.Errorf("not cut: %d bytes", len(long))
	}
}

// TestCheckpointFits: a subject with more identities than a checkpoint can
// name keeps as many as fit (the rest are submitted again, as duplicates).
func TestCheckpointFits(t *testing.T) {
	cp := checkpoint{Sent: map[string]string{}}
	for i := range 500 {
		cp.Sent[digest("r", lethe.Identity{Type: lethe.IdentityUserID, Value: fmt.Sprint(i)})] = "00001111-2222-3333-4444-555566667777"
	}
	s := cp.encode()
	if len(s) > connector.MaxCheckpointLen {
		t.Fatalf("checkpoint of %d bytes", len(s))
	}
	back := decodeCheckpoint(s)
	if n := len(back.Sent); n < 100 || n >= 500 {
		t.Errorf("%d digests kept", n)
	}
	if decodeCheckpoint(`{"check_url":"x"`).Sent == nil {
		t.Error("a foreign checkpoint was not replaced")
	}
}
