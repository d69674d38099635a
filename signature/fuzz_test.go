package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/signature"
)

var tField = regexp.MustCompile(`(?:^|,)\s*t=([^,]*)`)

// FuzzVerify: Verify never panics and never accepts a header that does not
// hold the HMAC of its own timestamp and the body under the secret; what
// Sign produces always verifies, and never for another body.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("whsec_example_secret"), "t=1735689600,v1=acf3646253f4dab2f0c9b84696ca6c67100443c8fc8dcc83f0450566262fc540", []byte(`{"status":"completed"}`), int64(1735689600))
	f.Add([]byte("foobar"), "t=1,v1=,v1=00", []byte(""), int64(0))
	f.Add([]byte(""), "t=-9223372036854775808,v1=x", []byte("x"), int64(9223372036854775807))
	f.Add([]byte("k"), " t = 5 , v1=", []byte("{}"), int64(5))
	f.Fuzz(func(t *testing.T, secret []byte, header string, body []byte, now int64) {
		at := time.Unix(now, 0)
		if err := signature.Verify(secret, header, body, at); err == nil {
			m := tField.FindStringSubmatch(header)
			if m == nil {
				t.Fatalf("accepted %q without a timestamp", header)
			}
			h := hmac.New(sha256.New, secret)
			h.Write([]byte(m[1] + "."))
			h.Write(body)
			want := regexp.MustCompile(`(?:^|,)\s*v1=` + hex.EncodeToString(h.Sum(nil)) + `\s*(?:,|$)`)
			if !want.MatchString(header) {
				t.Fatalf("accepted %q for a body and secret it does not sign", header)
			}
		}
		signed := signature.Sign(at, body, secret)
		if err := signature.Verify(secret, signed, body, at); err != nil {
			t.Fatalf("own signature %q refused: %v", signed, err)
		}
		if err := signature.Verify(secret, signed, append(body, 'x'), at); err == nil {
			t.Fatalf("own signature %q accepted for another body", signed)
		}
	})
}
