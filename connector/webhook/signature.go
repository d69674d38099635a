package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of every call lethe makes to a
// webhook target, and of every call back a target makes to lethe:
//
//	X-Lethe-Signature: t=<unix seconds>,v1=<lower-case hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// The timestamp is signed with the body so a captured call cannot be
// replayed later than SignatureTolerance.
const SignatureHeader = "X-Lethe-Signature"

// SignatureTolerance is how far a signature's timestamp may be from the
// verifier's clock, either way.
const SignatureTolerance = 5 * time.Minute

// Sign returns the SignatureHeader value for body at time t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Signature errors. They say what is wrong, never what was expected.
var (
	ErrSignatureMissing = errors.New("signature header is missing or malformed")
	ErrSignatureExpired = errors.New("signature timestamp is outside the tolerance")
	ErrSignatureInvalid = errors.New("signature does not match")
)

// VerifySignature checks header (a SignatureHeader value) against body and
// secret at now. Several v1= entries are allowed (a sender rotating its
// secret signs with both); one match is enough.
func VerifySignature(secret []byte, header string, body []byte, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMissing
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMissing
	}
	if d := now.Sub(time.Unix(sec, 0)); d > SignatureTolerance || d < -SignatureTolerance {
		return ErrSignatureExpired
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrSignatureInvalid
}
