package lethe

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/unicode/norm"
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

// NormalizeIdentity validates id and returns its canonical form. Errors are
// *Error with EINVALID and never quote the value.
//
// Every value, whatever its type, is first checked and normalised by one
// rule (see checkText): it must be valid UTF-8 without control, format
// (zero-width, bidi), private-use or replacement characters, it is put in
// Unicode NFC, and it must not change under NFKC (full-width or styled
// look-alike letters) nor mix scripts beyond the combinations of UTS #39's
// "highly restrictive" level (Latin with Han, Hiragana, Katakana, Hangul or
// Bopomofo). Such values are refused, not repaired: a look-alike address
// names somebody else, and quietly matching nothing would complete the
// request having erased nothing.
//
// Then emails are trimmed and lower-cased; phones are parsed with
// libphonenumber's rules (github.com/nyaruka/phonenumbers), must be a
// possible number (a known country code and a length that country uses)
// written internationally ("+" or "00") and become E.164; other
// values are trimmed and kept as given.
func NormalizeIdentity(id Identity) (Identity, error) {
	if !id.Type.Valid() {
		return Identity{}, Errorf(EINVALID, "identity type is not supported (use email, phone, user_id or x-<name>)")
	}
	v, problem := checkText(id.Value)
	if problem != "" {
		return Identity{}, Errorf(EINVALID, "%s identity %s", id.Type, problem)
	}
	v = strings.TrimSpace(v)
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
		return Identity{Type: id.Type, Value: v}, nil
	}
}

// checkText applies the rule every identity value passes before its type's
// own rule (see NormalizeIdentity) and returns the value in NFC, or a
// problem phrased to follow "<type> identity ".
func checkText(s string) (string, string) {
	if !utf8.ValidString(s) {
		// Lone surrogates arrive as invalid UTF-8 (or, through JSON, as
		// U+FFFD, refused below).
		return "", "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return "", "contains a replacement character (a lone surrogate or a broken byte sequence)"
		case unicode.Is(unicode.Cf, r):
			return "", "contains invisible formatting characters (zero-width or bidi marks)"
		case unicode.IsControl(r):
			return "", "contains control characters"
		case unicode.Is(unicode.Co, r) || unicode.Is(unicode.Cs, r):
			return "", "contains private-use characters"
		}
	}
	n := norm.NFC.String(s)
	if norm.NFKC.String(n) != n {
		return "", "contains compatibility characters (full-width, styled or ligature letters that look like others)"
	}
	if mixedScripts(n) {
		return "", "mixes letters of different scripts (look-alike characters)"
	}
	return n, ""
}

// scriptOrder lists the scripts looked up first; a letter outside them is
// looked up in every script (rare).
var scriptOrder = []string{"Latin", "Cyrillic", "Greek", "Han", "Hiragana", "Katakana", "Hangul", "Arabic", "Hebrew", "Devanagari", "Thai", "Armenian", "Georgian", "Bopomofo"}

// allowedWith are the scripts UTS #39's highly restrictive level lets a
// value combine with Latin (and with each other): the CJK writing systems.
var cjk = map[string]bool{"Han": true, "Hiragana": true, "Katakana": true, "Hangul": true, "Bopomofo": true}

func scriptOf(r rune) string {
	for _, name := range scriptOrder {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	for name, t := range unicode.Scripts {
		if name != "Common" && name != "Inherited" && unicode.Is(t, r) {
			return name
		}
	}
	return "" // Common or Inherited: digits, punctuation, marks
}

// mixedScripts reports whether s has letters of more than one script,
// other than Latin with the CJK scripts (Japanese mixes Han, Hiragana and
// Katakana; Korean Han and Hangul).
func mixedScripts(s string) bool {
	seen := map[string]bool{}
	for _, r := range s {
		if r < utf8.RuneSelf {
			if unicode.IsLetter(r) {
				seen["Latin"] = true
			}
			continue
		}
		if sc := scriptOf(r); sc != "" {
			seen[sc] = true
		}
	}
	other := 0
	for sc := range seen {
		if sc != "Latin" && !cjk[sc] {
			other++
		}
	}
	switch {
	case other == 0:
		return false // Latin and/or CJK only
	case other == 1 && len(seen) == 1:
		return false // one non-Latin script alone
	}
	return true
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

// NormalizePhone returns the number in E.164 and whether s is an
// international number: a leading "+" or "00", digits, and spaces, dots,
// dashes, slashes and parentheses as separators, with a country code and a
// length libphonenumber's metadata allows for it. Possible, not "valid":
// reserved ranges (drama numbers such as +44 7700 900xxx) and numbers
// assigned after the metadata was built are real identities in stored
// data, and a placeholder is caught where it matters, by the connectors'
// follow limit. National numbers are refused because the country cannot
// be known; letters (vanity numbers, "ext.") are refused because intake
// takes the number, not a way of dialling it.
func NormalizePhone(s string) (string, bool) {
	s = strings.TrimSpace(s)
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
		case r == '+' && i == 0:
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/':
		default:
			return "", false
		}
	}
	if !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "00") {
		return "", false
	}
	n, ok := parsePhone(s, "")
	if !ok || !phonenumbers.IsPossibleNumber(n) {
		return "", false
	}
	// E.164 itself: at least 7 digits, at most 15, which some countries'
	// possible lengths are looser than.
	p := phonenumbers.Format(n, phonenumbers.E164)
	if !e164.MatchString(p) {
		return "", false
	}
	// libphonenumber drops a national prefix written after the country
	// code ("+84 0912…" is "+84912…"), so for some numbers the E.164 form
	// reads as yet another number ("+84 000…" loses a zero at every
	// parse). Only a form that reads as itself is an identity: stored, it
	// must compare equal to the same number written again.
	if again, ok := parsePhone(p, ""); !ok || phonenumbers.Format(again, phonenumbers.E164) != p {
		return "", false
	}
	return p, true
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// CanonicalPhone returns the E.164 form of a stored phone number however it
// was written (separators, "00" or "+", an extension, or a national number
// when region, an ISO 3166 code such as "GB", says whose), and whether it
// could be read as a possible number at all. Connectors use it to compare
// stored values with a subject's phone; unlike NormalizePhone it reads
// national numbers (given a region), extensions and letters, because
// stored data is what it is.
func CanonicalPhone(s, region string) (string, bool) {
	n, ok := parsePhone(strings.TrimSpace(s), region)
	if !ok || !phonenumbers.IsPossibleNumber(n) {
		return "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

// PhoneNationalNumber returns the national significant number of an E.164
// phone (the digits after the country code): every way of writing the
// number contains these digits in a row, which is what lets a database
// pre-select candidate rows before CanonicalPhone decides.
func PhoneNationalNumber(e164 string) (string, bool) {
	n, ok := parsePhone(e164, "")
	if !ok {
		return "", false
	}
	return phonenumbers.GetNationalSignificantNumber(n), true
}

func parsePhone(s, region string) (*phonenumbers.PhoneNumber, bool) {
	if len(s) > 64 || s == "" {
		return nil, false
	}
	if region == "" {
		// Without a region only international forms can be read; "00" is
		// the international prefix almost everywhere outside North America.
		if strings.HasPrefix(s, "00") {
			s = "+" + s[2:]
		}
		region = "ZZ"
	}
	n, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return nil, false
	}
	return n, true
}

// ValidPhoneRegion reports whether region is a region libphonenumber knows
// (an ISO 3166-1 alpha-2 code such as "GB").
func ValidPhoneRegion(region string) bool {
	return phonenumbers.GetCountryCodeForRegion(strings.ToUpper(region)) != 0
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
		if _, problem := checkText(v); problem == "" {
			if e, ok := NormalizeEmail(v); ok {
				return NormalizeIdentity(Identity{Type: IdentityEmail, Value: e})
			}
		}
	}
	if p, ok := NormalizePhone(v); ok && strings.HasPrefix(v, "+") {
		return Identity{Type: IdentityPhone, Value: p}, nil
	}
	return NormalizeIdentity(Identity{Type: IdentityUserID, Value: s})
}
