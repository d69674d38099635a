package redact_test

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/redact"
)

// FuzzRedact: whatever the text and the identities, no form of an identity
// is left standing as a token, nothing shaped like an email address or a
// run of 7 digits is left, and the result is bounded.
func FuzzRedact(f *testing.F) {
	f.Add("no row for alice+tag@example.com (SQLSTATE 23503) user 3", "alice+tag", "example", "447700900123", "3")
	f.Add("sms to 07700 900123, +44 (0)7700 900123, %2B447700900123", "a", "b", "447700900123", "x")
	f.Add("call (415) 555-0123 or 415.555.0123 or 1-415-555-0123", "bob", "example", "14155550123", "42")
	f.Add("e=alice%2Btag%40example.com&x=alice+tag@example.com", "alice+tag", "example", "4915112345678", "alice")
	f.Add(`{"error":{"message":"user \u0061da@x.io unknown, \nada 1.3"}}`, "ada", "x", "33612345678", "ada")
	f.Add("&#64;&commat;%40%2540\\u0040 2026-11-28 127.0.0.1 0x1234567", "q", "r", "12025550123", "redacted")
	f.Fuzz(func(t *testing.T, text, local, domain, phone, userID string) {
		ids := fuzzIdentities(local, domain, phone, userID)
		got := redact.String(text, ids)
		if len(got) > redact.MaxLen+len("...") {
			t.Fatalf("%d bytes out of %d", len(got), len(text))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if strings.IndexFunc(got, unicode.IsControl) >= 0 {
			t.Fatalf("control character in %q", got)
		}
		for _, id := range ids {
			for form, written := range forms(id) {
				if at := standing(got, form, written); at >= 0 {
					t.Fatalf("%s form %q left at %d:\n in %q\nout %q", id.Type, form, at, text, got)
				}
			}
		}
		if at := emailShaped(got); at >= 0 {
			t.Fatalf("email-shaped text left at %d:\n in %q\nout %q", at, text, got)
		}
		if at := longDigits(got); at >= 0 {
			t.Fatalf("7 digits left at %d:\n in %q\nout %q", at, text, got)
		}
	})
}

// fuzzIdentities makes valid identities of the fuzzer's strings: an email
// from local and domain, a phone from the digits of phone, and a user id.
func fuzzIdentities(local, domain, phone, userID string) []lethe.Identity {
	keep := func(s, extra string) string {
		return strings.Map(func(r rune) rune {
			if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(extra, r)) {
				return r
			}
			return -1
		}, s)
	}
	var ids []lethe.Identity
	for _, id := range []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: keep(local, "+._-") + "@" + keep(domain, "-") + ".example"},
		{Type: lethe.IdentityPhone, Value: "+" + keep(phone, "")},
		{Type: lethe.IdentityUserID, Value: userID},
	} {
		if len(id.Value) > 64 {
			continue
		}
		if n, err := lethe.NormalizeIdentity(id); err == nil {
			ids = append(ids, n)
		}
	}
	return ids
}

// forms maps how a system may write an identity to the text it stands for
// (an escaped form stands for the value), independently of how the package
// finds them.
func forms(id lethe.Identity) map[string]string {
	v := id.Value
	out := map[string]string{v: v, url.QueryEscape(v): v, url.PathEscape(v): v}
	if id.Type == lethe.IdentityPhone {
		plain := []string{v[1:], "00" + v[1:]}
		if n, err := phonenumbers.Parse(v, ""); err == nil {
			plain = append(plain,
				phonenumbers.Format(n, phonenumbers.NATIONAL),
				phonenumbers.Format(n, phonenumbers.INTERNATIONAL),
				phonenumbers.GetNationalSignificantNumber(n))
		}
		for _, p := range plain {
			if strings.Count(strings.Map(digitOnly, p), "") > 6 { // shorter national parts are no form of their own
				out[p] = p
			}
		}
	}
	return out
}

// standing returns where form stands in s as a token (ignoring case), or -1.
// Like the package, it takes the first and last runes of what the form is
// written for to say whether a neighbour continues the token; a placeholder counts as part of a token,
// since what it replaced touched the form.
func standing(s, form, written string) int {
	rs, fr := []rune(s), []rune(form)
	vr := []rune(written)
	first, last := vr[0], vr[len(vr)-1]
	ph := placeholderRunes(s)
	for i := 0; i+len(fr) <= len(rs); i++ {
		match := true
		for k, r := range fr {
			if !strings.EqualFold(string(rs[i+k]), string(r)) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		j := i + len(fr)
		if overlaps(ph, i, j) {
			continue
		}
		if continues(rs, ph, i-1, i-2, first) || continues(rs, ph, j, j+1, last) {
			continue
		}
		return i
	}
	return -1
}

func continues(rs []rune, ph []bool, k, beyond int, edge rune) bool {
	if k < 0 || k >= len(rs) || !word(edge) {
		return false
	}
	if ph[k] || word(rs[k]) {
		return true
	}
	digit := func(r rune) bool { return r >= '0' && r <= '9' }
	return digit(edge) && (rs[k] == '.' || rs[k] == ',') && beyond >= 0 && beyond < len(rs) && digit(rs[beyond])
}

func digitOnly(r rune) rune {
	if r >= '0' && r <= '9' {
		return r
	}
	return -1
}

func word(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// placeholderRunes marks the runes of s that belong to a placeholder.
func placeholderRunes(s string) []bool {
	rs := []rune(s)
	ph := []rune(redact.Placeholder)
	marks := make([]bool, len(rs))
	for i := 0; i+len(ph) <= len(rs); i++ {
		if string(rs[i:i+len(ph)]) == redact.Placeholder {
			for k := range ph {
				marks[i+k] = true
			}
		}
	}
	return marks
}

func overlaps(ph []bool, i, j int) bool {
	for k := i; k < j; k++ {
		if ph[k] {
			return true
		}
	}
	return false
}

// emailShaped returns where an "@" stands between a word rune on its left
// (through . + -) and one on its right (through . -), or -1.
func emailShaped(s string) int {
	rs := []rune(s)
	ph := placeholderRunes(s)
	for k, r := range rs {
		if r != '@' {
			continue
		}
		left, right := false, false
		for a := k - 1; a >= 0 && !ph[a] && (word(rs[a]) || strings.ContainsRune(".+-", rs[a])); a-- {
			left = left || word(rs[a])
		}
		for b := k + 1; b < len(rs) && !ph[b] && (word(rs[b]) || strings.ContainsRune(".-", rs[b])); b++ {
			right = right || word(rs[b])
		}
		if left && right {
			return k
		}
	}
	return -1
}

// longDigits returns where 7 or more ASCII digits stand in a row as a token
// of their own, or -1.
func longDigits(s string) int {
	rs := []rune(s)
	ph := placeholderRunes(s)
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
			j++
		}
		if j == i {
			i++
			continue
		}
		before := i > 0 && (ph[i-1] || word(rs[i-1]))
		after := j < len(rs) && (ph[j] || word(rs[j]))
		if j-i >= 7 && !before && !after {
			return i
		}
		i = j
	}
	return -1
}
