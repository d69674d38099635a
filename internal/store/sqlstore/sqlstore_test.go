package sqlstore

import (
	"testing"

	"github.com/lethe-privacy/lethe"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct {
		numbered bool
		in, want string
	}{
		{false, "SELECT a FROM t WHERE b = ? AND c IN (?, ?)", "SELECT a FROM t WHERE b = ? AND c IN (?, ?)"},
		{true, "SELECT a FROM t WHERE b = ? AND c IN (?, ?)", "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"},
		{true, "SELECT 1", "SELECT 1"},
		{true, "?,?,?,?,?,?,?,?,?,?,?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
	} {
		d := &Dialect{Numbered: tc.numbered}
		if got := d.rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCursor(t *testing.T) {
	id := "0190b5a0-0000-7000-8000-000000000001"
	got, err := decodeCursor(encodeCursor(id))
	if err != nil || got != id {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	for _, bad := range []string{"", "=", "not base64!", encodeCursor("")[:0], "MTo", "Mjpmb28"} {
		if _, err := decodeCursor(bad); lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("decodeCursor(%q) = %v, want %s", bad, err, lethe.EINVALID)
		}
	}
}
