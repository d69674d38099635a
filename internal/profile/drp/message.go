package drp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
)

// Version is the protocol version requests must name in drp.version.
const Version = "1.0"

// Rights a request may exercise (DRP 1.0 section 3.01). Only RightDeletion
// is offered; the others are answered as rights not offered.
const (
	RightDeletion = "deletion"
)

var knownRights = map[string]bool{
	"sale:opt-out": true, "sale:opt-in": true, RightDeletion: true,
	"access": true, "access:categories": true, "access:specific": true,
}

// errBadSignature is every failure to verify a signed message: whether the
// body was too short, the key wrong or the message altered is not told.
var errBadSignature = lethe.Errorf(lethe.EUNAUTH, "invalid token or signature")

// Open decodes a signed message as DRP 1.0 section 3.07 defines it: the
// base64 of a libsodium "combined mode" buffer, the 64-byte Ed25519
// signature followed by the message, and returns the message when the
// signature verifies under one of keys. Every key is tried, without
// stopping at a match, so timing does not tell which key matched.
func Open(body []byte, keys []ed25519.PublicKey) ([]byte, error) {
	raw, err := decodeBase64(body)
	if err != nil {
		return nil, err
	}
	if len(raw) < ed25519.SignatureSize {
		return nil, errBadSignature
	}
	sig, msg := raw[:ed25519.SignatureSize], raw[ed25519.SignatureSize:]
	ok := false
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig) {
			ok = true
		}
	}
	if !ok {
		return nil, errBadSignature
	}
	return msg, nil
}

// Seal signs msg with key the way an agent does: base64 of signature and
// message (libsodium's crypto_sign). lethe never signs requests; tests and
// tools do.
func Seal(key ed25519.PrivateKey, msg []byte) []byte {
	raw := append(ed25519.Sign(key, msg), msg...)
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	return out
}

// decodeBase64 accepts standard base64, padded or not (PyNaCl's
// Base64Encoder pads; others may not), with surrounding white space.
func decodeBase64(body []byte) ([]byte, error) {
	s := bytes.TrimSpace(body)
	if len(s) == 0 {
		return nil, lethe.Errorf(lethe.EINVALID, "request body is empty; it must be a base64-encoded signed message")
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	out := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Strict().Decode(out, s)
	if err != nil {
		return nil, lethe.Errorf(lethe.EINVALID, "request body is not a base64-encoded signed message")
	}
	return out[:n], nil
}

// Envelope holds the claims that bind a signed message to one agent, one
// business and a short window of time (sections 2.01 and 2.05).
type Envelope struct {
	AgentID    string
	BusinessID string
	IssuedAt   time.Time
	ExpiresAt  time.Time
	Version    string
}

// Exercise is a decoded Data Rights Exercise request.
type Exercise struct {
	Envelope
	AgentRequestID string
	Exercise       string
	// Regime is "" for a voluntary request.
	Regime         string
	StatusCallback string
	// Identities are the email and phone_number claims, the ones lethe
	// can match a subject by.
	Identities []lethe.Identity
}

// claims is a decoded message: member name to raw value. Members the
// profile does not read are allowed (the spec lets a request carry any
// other claim) but still checked for duplicates and depth.
type claims map[string]json.RawMessage

func decodeClaims(msg []byte) (claims, error) {
	var c claims
	if err := request.UnmarshalStrict(msg, &c); err != nil {
		if lethe.ErrorCode(err) != lethe.EINVALID {
			return nil, lethe.Errorf(lethe.EINVALID, "signed message is invalid")
		}
		return nil, lethe.Errorf(lethe.EINVALID, "signed message: %s", lethe.ErrorMessage(err))
	}
	return c, nil
}

// str returns a string member; absent or null is "" with present false.
func (c claims) str(name string, max int) (string, bool, error) {
	raw, ok := c[name]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false, lethe.Errorf(lethe.EINVALID, "%s must be a string", name)
	}
	if len(s) > max {
		return "", false, lethe.Errorf(lethe.EINVALID, "%s is longer than %d bytes", name, max)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", false, lethe.Errorf(lethe.EINVALID, "%s contains control characters", name)
	}
	return s, true, nil
}

func (c claims) required(name string, max int) (string, error) {
	s, ok, err := c.str(name, max)
	if err != nil {
		return "", err
	}
	if !ok || strings.TrimSpace(s) == "" {
		return "", lethe.Errorf(lethe.EINVALID, "%s is missing", name)
	}
	return s, nil
}

func (c claims) time(name string) (time.Time, error) {
	s, err := c.required(name, 64)
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseISO8601(s)
	if !ok {
		return time.Time{}, lethe.Errorf(lethe.EINVALID, "%s must be an ISO 8601 timestamp", name)
	}
	return t, nil
}

// parseISO8601 reads the timestamps agents send: RFC 3339 with any
// fraction, or without an offset (Python's isoformat() of a naive time),
// which is taken as UTC.
func parseISO8601(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

const (
	maxIDLen  = 256
	maxURLLen = 2048
)

func (c claims) envelope() (Envelope, error) {
	var e Envelope
	var err error
	if e.AgentID, err = c.required("agent-id", maxIDLen); err != nil {
		return e, err
	}
	if e.BusinessID, err = c.required("business-id", maxIDLen); err != nil {
		return e, err
	}
	if e.IssuedAt, err = c.time("issued-at"); err != nil {
		return e, err
	}
	if e.ExpiresAt, err = c.time("expires-at"); err != nil {
		return e, err
	}
	if e.Version, err = c.required("drp.version", 16); err != nil {
		return e, err
	}
	return e, nil
}

// DecodeSetup decodes the signed message of a Pair-wise Key Setup request
// (section 2.05).
func DecodeSetup(msg []byte) (Envelope, error) {
	c, err := decodeClaims(msg)
	if err != nil {
		return Envelope{}, err
	}
	return c.envelope()
}

// DecodeExercise decodes the signed message of a Data Rights Exercise
// request (section 2.01). A right lethe does not know, or one it does not
// offer, is not an error here: the handler answers it.
func DecodeExercise(msg []byte) (Exercise, error) {
	c, err := decodeClaims(msg)
	if err != nil {
		return Exercise{}, err
	}
	var x Exercise
	if x.Envelope, err = c.envelope(); err != nil {
		return x, err
	}
	if x.Exercise, err = c.required("exercise", 64); err != nil {
		return x, err
	}
	if x.AgentRequestID, _, err = c.str("agent-request-id", maxIDLen); err != nil {
		return x, err
	}
	if x.Regime, _, err = c.str("regime", 64); err != nil {
		return x, err
	}
	if x.StatusCallback, _, err = c.str("status_callback", maxURLLen); err != nil {
		return x, err
	}
	if raw, ok := c["relationships"]; ok && string(raw) != "null" {
		var hints []string
		if json.Unmarshal(raw, &hints) != nil {
			return x, lethe.Errorf(lethe.EINVALID, "relationships must be an array of strings")
		}
	}
	for _, f := range []struct {
		claim string
		typ   lethe.IdentityType
	}{{"email", lethe.IdentityEmail}, {"phone_number", lethe.IdentityPhone}} {
		v, ok, err := c.str(f.claim, lethe.MaxValueLen)
		if err != nil {
			return x, err
		}
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		id, err := lethe.NormalizeIdentity(lethe.Identity{Type: f.typ, Value: v})
		if err != nil {
			return x, lethe.Errorf(lethe.EINVALID, "%s is not a valid %s", f.claim, f.typ)
		}
		x.Identities = append(x.Identities, id)
	}
	for _, b := range []string{"email_verified", "phone_number_verified", "address_verified"} {
		if raw, ok := c[b]; ok && string(raw) != "null" && string(raw) != "true" && string(raw) != "false" {
			return x, lethe.Errorf(lethe.EINVALID, "%s must be a boolean", b)
		}
	}
	return x, nil
}

// DecodeRevoke decodes the signed message of a Data Rights Revoke request
// (section 2.04): an object whose only defined member, reason, is free
// text. The reason is checked for shape and then dropped: it is the
// user's own words and may name them.
//
// Section 2.04 defines no envelope for it, but an agent may sign one in;
// agentID and businessID return its agent-id and business-id ("" when
// absent) for the handler to check as section 3.07 does.
func DecodeRevoke(msg []byte) (agentID, businessID string, err error) {
	c, err := decodeClaims(msg)
	if err != nil {
		return "", "", err
	}
	if _, _, err = c.str("reason", 4096); err != nil {
		return "", "", err
	}
	if agentID, _, err = c.str("agent-id", maxIDLen); err != nil {
		return "", "", err
	}
	if businessID, _, err = c.str("business-id", maxIDLen); err != nil {
		return "", "", err
	}
	return agentID, businessID, nil
}
