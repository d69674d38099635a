package lethe

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IdentityType says what kind of value identifies a subject.
type IdentityType string

const (
	IdentityEmail  IdentityType = "email"
	IdentityPhone  IdentityType = "phone"
	IdentityUserID IdentityType = "user_id"
)

// Limits on identity values; longer values are rejected rather than cut,
// since a cut value would name somebody else.
const (
	MaxEmailLen = 254 // RFC 5321 path limit
	MaxValueLen = 256
)

var customType = regexp.MustCompile(`^x-[a-z0-9][a-z0-9_-]{0,62}$`)

// Valid reports whether t is a built-in type or a custom "x-" type.
func (t IdentityType) Valid() bool {
	switch t {
	case IdentityEmail, IdentityPhone, IdentityUserID:
		return true
	}
	return customType.MatchString(string(t))
}

// Identity is one way to identify a data subject.
type Identity struct {
	Type  IdentityType
	Value string
}

// String is deliberately value-free so an Identity printed by accident
// (in a log line, a panic, an error) never discloses the value.
func (id Identity) String() string { return string(id.Type) + ":<redacted>" }

// GoString keeps %#v as safe as %v.
func (id Identity) GoString() string { return id.String() }

// NormalizeIdentity validates id and returns its canonical form: emails
// trimmed and lower-cased, phones in E.164, other values trimmed. Errors are
// *Error with EINVALID and never quote the value.
func NormalizeIdentity(id Identity) (Identity, error) {
	if !id.Type.Valid() {
		return Identity{}, Errorf(EINVALID, "identity type is not supported (use email, phone, user_id or x-<name>)")
	}
	if !utf8.ValidString(id.Value) {
		return Identity{}, Errorf(EINVALID, "%s identity is not valid UTF-8", id.Type)
	}
	v := strings.TrimSpace(id.Value)
	if v == "" {
		return Identity{}, Errorf(EINVALID, "%s identity is empty", id.Type)
	}
	switch id.Type {
	case IdentityEmail:
		e, ok := NormalizeEmail(v)
		if !ok {
			return Identity{}, Errorf(EINVALID, "email identity is not a valid address")
		}
		return Identity{Type: IdentityEmail, Value: e}, nil
	case IdentityPhone:
		p, ok := NormalizePhone(v)
		if !ok {
			return Identity{}, Errorf(EINVALID, "phone identity is not a valid international number (E.164, e.g. +4915112345678)")
		}
		return Identity{Type: IdentityPhone, Value: p}, nil
	default:
		if len(v) > MaxValueLen {
			return Identity{}, Errorf(EINVALID, "%s identity is longer than %d bytes", id.Type, MaxValueLen)
		}
		if strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return Identity{}, Errorf(EINVALID, "%s identity contains control characters", id.Type)
		}
		return Identity{Type: id.Type, Value: v}, nil
	}
}

// NormalizeEmail returns the trimmed, lower-cased address and whether it is a
// plain addr-spec (no display name, no comments) with a dotted domain.
func NormalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > MaxEmailLen || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	if at < 1 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", false
	}
	return s, true
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// NormalizePhone returns the number in E.164 and whether s is an
// international number: a leading "+" or "00", then 7 to 15 digits, with
// spaces, dots, dashes and parentheses allowed as separators. National
// numbers are refused because the country cannot be known.
func NormalizePhone(s string) (string, bool) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", false
		}
	}
	p := b.String()
	if strings.HasPrefix(p, "00") {
		p = "+" + p[2:]
	}
	if !e164.MatchString(p) {
		return "", false
	}
	return p, true
}

// ClassifyIdentifier turns a free-form customer identifier (as the connect
// profile receives it) into an Identity: an email if it is an address, a
// phone if it is an international number written with a leading "+",
// otherwise a user_id. The "00" international prefix that NormalizePhone
// accepts is not enough here: numeric ids often start with zeros, and
// misreading one as a phone would erase the wrong person (or nobody).
func ClassifyIdentifier(s string) (Identity, error) {
	v := strings.TrimSpace(s)
	if strings.Contains(v, "@") {
		if e, ok := NormalizeEmail(v); ok {
			return Identity{Type: IdentityEmail, Value: e}, nil
		}
	}
	if p, ok := NormalizePhone(v); ok && strings.HasPrefix(v, "+") {
		return Identity{Type: IdentityPhone, Value: p}, nil
	}
	return NormalizeIdentity(Identity{Type: IdentityUserID, Value: s})
}
