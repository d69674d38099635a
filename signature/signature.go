// Package signature is the X-Lethe-Signature scheme: how lethe signs the
// calls it makes (to webhook targets, to callback receivers) and checks the
// calls made to it (webhook targets calling back). docs/callbacks.md
// describes it for receivers, with a test vector.
//
//	X-Lethe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]
//
// Each v1 is the lower-case hex HMAC-SHA256 of "<t>.<raw body>" keyed with
// one secret; a sender rotating its secret signs with every secret it holds,
// newest first, and one match is enough. The timestamp is signed with the
// body so a captured call cannot be replayed later than Tolerance.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP header that carries a signature.
const Header = "X-Lethe-Signature"

// Tolerance is how far a signature's timestamp may be from the verifier's
// clock, either way.
const Tolerance = 5 * time.Minute

// Errors of Verify. They say what is wrong, never what was expected.
var (
	ErrMissing = errors.New("signature header is missing or malformed")
	ErrExpired = errors.New("signature timestamp is outside the tolerance")
	ErrInvalid = errors.New("signature does not match")
)

// Sign returns the Header value for body at t: one v1 per secret, in the
// order given.
func Sign(t time.Time, body []byte, secrets ...[]byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString(",v1=" + mac(s, ts, body))
	}
	return b.String()
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks header (a Header value) against body and secret at now:
// exactly one t, at least one v1, t within Tolerance of now, and one v1
// equal (compared in constant time) to the HMAC under secret.
func Verify(secret []byte, header string, body []byte, now time.Time) error {
	var ts string
	var sigs []string
	seenT := false
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMissing
		}
		switch k {
		case "t":
			if seenT {
				return ErrMissing // which one was signed?
			}
			ts, seenT = v, true
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMissing
	}
	if d := now.Sub(time.Unix(sec, 0)); d > Tolerance || d < -Tolerance {
		return ErrExpired
	}
	want := []byte(mac(secret, ts, body))
	ok := false
	for _, s := range sigs {
		// Every entry is compared, so the time taken does not say which
		// one matched.
		ok = hmac.Equal([]byte(s), want) || ok
	}
	if !ok {
		return ErrInvalid
	}
	return nil
}
