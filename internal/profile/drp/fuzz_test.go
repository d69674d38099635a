package drp_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/profile/drp"
)

// FuzzOpen: no input panics; only a message signed by the key opens, and
// it opens to exactly what was signed; every refusal is an error a
// caller can answer (EUNAUTH or EINVALID), never a value from the input.
func FuzzOpen(f *testing.F) {
	key := agentKey(agentID)
	pub := key.Public().(ed25519.PublicKey)
	f.Add([]byte(`{"agent-id":"aa-id"}`), false)
	f.Add([]byte(""), true)
	f.Add([]byte("not base64 %%%"), true)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		body := data
		if !raw {
			body = sign(key, data)
		}
		msg, err := drp.Open(body, []ed25519.PublicKey{pub})
		if !raw {
			if err != nil || string(msg) != string(data) {
				t.Fatalf("a signed message did not open to itself: %q %v", msg, err)
			}
			return
		}
		if err == nil {
			// Raw input opened: it must then be a valid signature over msg.
			b, _ := decodeAny(body)
			if len(b) < ed25519.SignatureSize || !ed25519.Verify(pub, msg, b[:ed25519.SignatureSize]) {
				t.Fatalf("unsigned input %q opened", body)
			}
			return
		}
		if c := lethe.ErrorCode(err); c != lethe.EUNAUTH && c != lethe.EINVALID {
			t.Fatalf("error code %s", c)
		}
	})
}

// FuzzDecodeExercise: no message panics, errors are EINVALID and never
// echo the caller's values, and an accepted message has the envelope the
// handler goes on to check.
func FuzzDecodeExercise(f *testing.F) {
	f.Add([]byte(`{"agent-id":"aa-id","business-id":"cb-id","issued-at":"2026-01-01T00:00:00Z","expires-at":"2026-01-01T00:10:00Z","drp.version":"1.0","exercise":"deletion","email":"a@example.com"}`))
	f.Add([]byte(`{"agent-id":"zz-secret-value","email":"zz-secret-value"}`))
	f.Add([]byte(`{"relationships":[1],"phone_number":"+1415555"}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		x, err := drp.DecodeExercise(msg)
		if err != nil {
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Fatalf("code %s", lethe.ErrorCode(err))
			}
			if strings.Contains(lethe.ErrorMessage(err), "zz-secret") {
				t.Fatalf("message %q echoes a value", lethe.ErrorMessage(err))
			}
			return
		}
		if x.AgentID == "" || x.BusinessID == "" || x.Exercise == "" || x.IssuedAt.IsZero() || x.ExpiresAt.IsZero() {
			t.Fatalf("accepted without its envelope: %+v", x)
		}
		if !json.Valid(msg) {
			t.Fatalf("accepted invalid JSON %q", msg)
		}
	})
}

func decodeAny(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if len(s)%4 != 0 {
		return base64RawStd.DecodeString(s)
	}
	return base64Std.DecodeString(s)
}

var (
	base64Std    = base64.StdEncoding.Strict()
	base64RawStd = base64.RawStdEncoding.Strict()
)
