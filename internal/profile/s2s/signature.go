package s2s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Sign returns the Authorization value for body under secret: the lowercase
// hex HMAC-SHA256 of the raw bytes.
func Sign(body, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether sig is the HMAC-SHA256 of body under one
// of secrets. sig must be exactly 64 hex digits, of either case (the same
// MAC either way). Every secret is tried, without stopping at a match, and
// each MAC is compared in constant time, so timing reveals neither how much
// of a guess was right nor which secret matched.
func VerifySignature(body []byte, sig string, secrets [][]byte) bool {
	if len(sig) != hex.EncodedLen(sha256.Size) {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	ok := false
	for _, s := range secrets {
		m := hmac.New(sha256.New, s)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}
