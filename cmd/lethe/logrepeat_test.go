package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRepeatLimiter: 100 identical errors within the interval make one
// line; the next one after it says how many were left out; other kinds of
// errors and info lines are not held back.
func TestRepeatLimiter(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	log := slog.New(newRepeatLimiter(slog.NewJSONHandler(&buf, nil), func() time.Time { return now }))
	diskFull := errors.New("database or disk is full")
	for i := range 100 {
		log.With("component", "api").Error("request failed", "request_id", i, "err", diskFull)
		log.Info("request done", "request_id", i)
	}
	log.Error("request failed", "err", errors.New("another cause"))
	log.Warn("request failed", "err", diskFull)
	now = now.Add(repeatInterval)
	log.Error("request failed", "request_id", 101, "err", diskFull)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	var errorsSeen, infos int
	var suppressed []any
	for _, m := range lines {
		switch m["level"] {
		case "ERROR":
			errorsSeen++
			if m["err"] == diskFull.Error() {
				suppressed = append(suppressed, m["suppressed"])
			}
		case "INFO":
			infos++
		}
	}
	if infos != 100 {
		t.Errorf("%d info lines, want all 100", infos)
	}
	if errorsSeen != 3 {
		t.Errorf("%d error lines, want 3 (first, other cause, after the interval):\n%s", errorsSeen, buf.String())
	}
	if len(suppressed) != 2 || suppressed[0] != nil || suppressed[1] != float64(99) {
		t.Errorf("suppressed counts %v, want [<none> 99]", suppressed)
	}
	if !strings.Contains(buf.String(), `"level":"WARN"`) {
		t.Error("a warning of the same message was held back as if it were the error")
	}
}
