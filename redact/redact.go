// Package redact removes personal data from text lethe keeps: a task's last
// error, River's job errors, log lines. Every connector, the pipeline and
// the processors use it, so there is one rule for what an error may say.
//
// It removes
//   - every form of each identity of the subject: as given and normalised,
//     in any letter case, percent-encoded (query or path escaping, "+" for a
//     space, double encoding), JSON- or HTML-escaped, and for a phone its
//     international, national and formatted forms ("+44 7700 900123",
//     "07700 900123", "(415) 555-0123", "415.555.0123", "4155550123");
//   - anything that looks like an email address or a phone number (7 or more
//     digits, separators allowed; dates and dotted addresses such as
//     127.0.0.1 stay), whoever it belongs to: errors come from remote
//     systems, which quote other people's data too.
//
// Matching respects tokens: an identity value is removed only where it stands
// as a whole token (not next to a letter, digit or underscore, nor inside a
// number such as 1.3), so a user id 3 leaves "SQLSTATE 23503" readable.
package redact

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/lethe-privacy/lethe"
)

// Placeholder stands where something was removed.
const Placeholder = "<redacted>"

// MaxLen bounds the text String returns (plus "..." when cut): errors can
// carry whole response bodies.
const MaxLen = 500

// minPhoneDigits is how many digits make a run of digits look like a phone
// number in remote text (the shortest E.164 number has 7).
const minPhoneDigits = 7

// Redactor removes the identities it was made with, and anything that looks
// like an email address or phone number, from text. It is safe for
// concurrent use.
type Redactor struct {
	values [][]rune // identity values: as given, normalised; compared ignoring case
	digits [][]rune // digit sequences of phone identities; separators may sit between digits
	margin int      // bytes past MaxLen a form can reach from a start before it
}

// New returns a Redactor for the identities of one subject. Identities with
// empty values are ignored.
func New(ids []lethe.Identity) *Redactor {
	r := &Redactor{margin: 1024}
	seen := map[string]bool{}
	add := func(list *[][]rune, v string) {
		k := strings.ToLower(v)
		if v == "" || seen[k] {
			return
		}
		seen[k] = true
		*list = append(*list, []rune(v))
		// The longest encoding of a rune (%25XX four times) is 20 bytes;
		// the rest covers a cut backed off to a token boundary.
		r.margin = max(r.margin, 24*utf8.RuneCountInString(v)+512)
	}
	for _, id := range ids {
		v := strings.TrimSpace(id.Value)
		if v == "" {
			continue
		}
		add(&r.values, v)
		if n, err := lethe.NormalizeIdentity(id); err == nil {
			add(&r.values, n.Value)
		}
		if id.Type == lethe.IdentityPhone {
			for _, d := range phoneDigits(v) {
				add(&r.digits, d)
			}
		}
	}
	return r
}

// String returns s without identity values, email addresses and phone
// numbers, with control characters turned into spaces and cut to MaxLen.
func String(s string, ids []lethe.Identity) string { return New(ids).String(s) }

// Error returns err with its text redacted (see Redactor.Error).
func Error(err error, ids []lethe.Identity) error { return New(ids).Error(err) }

// Error returns err unchanged when redaction leaves its text as it is, and
// otherwise an error with the redacted text that unwraps only to
// context.Canceled or context.DeadlineExceeded, when err was one: the
// original text must not be reachable through it. Callers that mark errors
// (connector.Permanent) mark the result again.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := r.String(msg)
	if out == msg {
		return err
	}
	e := &redactedError{msg: out}
	for _, ce := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ce) {
			e.cause = ce
		}
	}
	return e
}

type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// String returns s without identity values, email addresses and phone
// numbers, with control characters turned into spaces and cut to MaxLen
// bytes (plus "...").
func (r *Redactor) String(s string) string {
	s = clean(s)
	// Only what can reach the first MaxLen bytes matters; cutting after
	// scrubbing keeps a value from being split so that half of it no longer
	// matches.
	// Text past limit is dropped; the margin after it holds the rest of any
	// form that starts before it.
	cut, limit := len(s) > MaxLen, len(s)
	if len(s) > MaxLen+r.margin {
		s = s[:cutAt(s, MaxLen+r.margin)]
		limit = cutAt(s, MaxLen)
	}
	var spans []span
	streams := [][]unit{rawUnits(s)}
	if strings.ContainsAny(s, `%\&`) {
		streams = append(streams, decodedUnits(s))
	}
	for _, u := range streams {
		for _, v := range r.values {
			spans = findValue(spans, s, u, v)
		}
		for _, d := range r.digits {
			spans = findDigits(spans, s, u, d)
		}
		spans = findEmails(spans, u)
		spans = findPhones(spans, s, u)
	}
	out, marks := replace(s, spans, limit)
	if !cut && len(out) <= MaxLen {
		return out
	}
	end := min(len(out), MaxLen)
	for _, m := range marks {
		if m < end && end < m+len(Placeholder) {
			end = m // never leave half a placeholder
		}
	}
	return out[:cutAt(out, end)] + "..."
}

// cutAt returns the offset at or before i where s can be cut without
// splitting a rune or, unless it is longer than any identity value, a
// token: "adam" cut to "ada" would read as a token.
func cutAt(s string, i int) int {
	if i >= len(s) {
		return len(s)
	}
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	rune0 := i
	for i > 0 && rune0-i <= lethe.MaxValueLen {
		before, w := utf8.DecodeLastRuneInString(s[:i])
		at, _ := utf8.DecodeRuneInString(s[i:])
		if !isWord(before) || !isWord(at) {
			return i
		}
		i -= w
	}
	if i == 0 {
		return 0
	}
	return rune0
}

// clean makes s valid UTF-8 and turns control characters into spaces, so a
// stored error is one printable line.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// span is a byte range of the text to remove.
type span struct{ start, end int }

// replace returns s up to limit with Placeholder in place of the union of
// spans (a span that starts before limit goes whole); marks are the offsets
// of the placeholders in the result.
func replace(s string, spans []span, limit int) (string, []int) {
	if len(spans) == 0 {
		return s[:limit], nil
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	var b strings.Builder
	var marks []int
	at := 0
	for i := 0; i < len(spans) && spans[i].start < limit; {
		sp := spans[i]
		for i++; i < len(spans) && spans[i].start <= sp.end; i++ {
			sp.end = max(sp.end, spans[i].end)
		}
		b.WriteString(s[at:sp.start])
		marks = append(marks, b.Len())
		b.WriteString(Placeholder)
		at = sp.end
	}
	if at < limit {
		b.WriteString(s[at:limit])
	}
	return b.String(), marks
}

// unit is one character of the text as read: a rune, or an escape
// (%40, %2540, \u0040, &#64;) decoded to the rune it stands for.
type unit struct {
	r          rune
	start, end int // bytes of the text it was read from
}

func rawUnits(s string) []unit {
	u := make([]unit, 0, len(s))
	for i, r := range s {
		u = append(u, unit{r, i, i + utf8.RuneLen(r)})
	}
	return u
}

func decodedUnits(s string) []unit {
	u := make([]unit, 0, len(s))
	for i := 0; i < len(s); {
		r, w := decodeAt(s, i)
		u = append(u, unit{r, i, i + w})
		i += w
	}
	return u
}

// decodeAt reads the character at s[i], decoding an escape that starts there.
func decodeAt(s string, i int) (rune, int) {
	switch s[i] {
	case '%':
		if r, w := percentAt(s, i); w > 0 {
			return r, w
		}
	case '\\':
		if r, w := jsonEscapeAt(s, i); w > 0 {
			return r, w
		}
	case '&':
		if r, w := entityAt(s, i); w > 0 {
			return r, w
		}
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, w
}

// percentByte reads one percent-encoded byte, "%XX" or doubly encoded
// "%25XX".
func percentByte(s string, i int) (byte, int) {
	if i+3 <= len(s) && s[i] == '%' {
		if i+5 <= len(s) && s[i+1:i+3] == "25" {
			if b, ok := hexByte(s[i+3 : i+5]); ok {
				return b, 5
			}
		}
		if b, ok := hexByte(s[i+1 : i+3]); ok {
			return b, 3
		}
	}
	return 0, 0
}

func percentAt(s string, i int) (rune, int) {
	b, w := percentByte(s, i)
	if w == 0 {
		return 0, 0
	}
	if b < utf8.RuneSelf {
		return rune(b), w
	}
	buf := []byte{b}
	n := w
	for len(buf) < utf8.UTFMax && !utf8.FullRune(buf) {
		c, cw := percentByte(s, i+n)
		if cw == 0 {
			break
		}
		buf = append(buf, c)
		n += cw
	}
	r, size := utf8.DecodeRune(buf)
	if r == utf8.RuneError || size != len(buf) {
		return 0, 0
	}
	return r, n
}

func hexByte(s string) (byte, bool) {
	v, err := strconv.ParseUint(s, 16, 8)
	return byte(v), err == nil
}

func jsonEscapeAt(s string, i int) (rune, int) {
	if i+1 >= len(s) {
		return 0, 0
	}
	switch c := s[i+1]; c {
	case '"', '\\', '/':
		return rune(c), 2
	case 'u':
		r, ok := hex4(s, i)
		if !ok {
			return 0, 0
		}
		if utf16.IsSurrogate(r) {
			if r2, ok := hex4(s, i+6); ok {
				if p := utf16.DecodeRune(r, r2); p != unicode.ReplacementChar {
					return p, 12
				}
			}
		}
		return r, 6
	}
	return 0, 0
}

// hex4 reads "\uXXXX" at s[i].
func hex4(s string, i int) (rune, bool) {
	if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
	return rune(v), err == nil
}

var namedEntities = map[string]rune{"amp": '&', "lt": '<', "gt": '>', "quot": '"', "apos": '\'', "commat": '@', "plus": '+', "nbsp": ' '}

// entityAt reads an HTML character reference: &#64; &#x40; &commat;.
func entityAt(s string, i int) (rune, int) {
	end := strings.IndexByte(s[i:min(len(s), i+12)], ';')
	if end < 2 {
		return 0, 0
	}
	ref := s[i+1 : i+end]
	if r, ok := namedEntities[ref]; ok {
		return r, end + 1
	}
	if ref[0] != '#' {
		return 0, 0
	}
	base, digits := 10, ref[1:]
	if strings.HasPrefix(digits, "x") || strings.HasPrefix(digits, "X") {
		base, digits = 16, digits[1:]
	}
	v, err := strconv.ParseUint(digits, base, 21)
	if err != nil || v == 0 || !utf8.ValidRune(rune(v)) {
		return 0, 0
	}
	return rune(v), end + 1
}

// isWord reports whether r belongs to a token: identity values are removed
// only where no such rune touches them.
func isWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// A match at u[i:j] stands as a token unless the runes next to it continue
// the token its edge rune belongs to, read both as decoded and as written:
// "%22alice" and "&#34;alice" both start a token at "alice".

// joinedLeft reports whether u[i-1] continues the token of edge, the first
// rune of a match at u[i].
func joinedLeft(s string, u []unit, i int, edge rune) bool {
	if i == 0 || !isWord(edge) || !joins(u[i-1].r, edge, func() rune { return u[i-2].r }, i >= 2) {
		return false
	}
	off := u[i].start
	r, w := utf8.DecodeLastRuneInString(s[:off])
	if strings.ContainsRune("ntrbf", r) && off-w > 0 && s[off-w-1] == '\\' {
		return false // a JSON escape: "\nalice"
	}
	r2, _ := utf8.DecodeLastRuneInString(s[:off-w])
	return joins(r, edge, func() rune { return r2 }, off-w > 0)
}

// joinedRight reports whether u[j] continues the token of edge, the last
// rune of a match ending before u[j].
func joinedRight(s string, u []unit, j int, edge rune) bool {
	if j >= len(u) || !isWord(edge) || !joins(u[j].r, edge, func() rune { return u[j+1].r }, j+1 < len(u)) {
		return false
	}
	off := u[j].start
	r, w := utf8.DecodeRuneInString(s[off:])
	r2, _ := utf8.DecodeRuneInString(s[off+w:])
	return joins(r, edge, func() rune { return r2 }, off+w < len(s))
}

// joins reports whether next, beside a match whose edge rune is edge,
// continues edge's token: a word rune, or for a digit a decimal point or
// comma followed by a digit (the 3 of "1.3" is no token). beyond is the
// rune past next, when there is one.
func joins(next, edge rune, beyond func() rune, hasBeyond bool) bool {
	if isWord(next) {
		return true
	}
	return isDigit(edge) && (next == '.' || next == ',') && hasBeyond && isDigit(beyond())
}

// wordBefore reports whether a rune of a token stands right before u[i],
// read both as decoded and as written.
func wordBefore(s string, u []unit, i int) bool { return joinedLeft(s, u, i, 'a') }

// wordAt reports whether u[j] is a rune of a token, read both ways.
func wordAt(s string, u []unit, j int) bool { return joinedRight(s, u, j, 'a') }

// sameRune compares runes ignoring case; inside a value (not at its edges,
// where a space is a separator) a "+" and a space are the same: a query
// string's "+" may have been decoded to a space, or a space encoded as "+".
func sameRune(a, b rune, inside bool) bool {
	if a == b {
		return true
	}
	if inside && (a == '+' && b == ' ' || a == ' ' && b == '+') {
		return true
	}
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}

// findValue adds the spans where v stands as a whole token in u.
func findValue(spans []span, s string, u []unit, v []rune) []span {
	n := len(v)
	for i := 0; i+n <= len(u); i++ {
		k := 0
		for k < n && sameRune(u[i+k].r, v[k], k > 0 && k < n-1) {
			k++
		}
		if k < n || joinedLeft(s, u, i, v[0]) || joinedRight(s, u, i+n, v[n-1]) {
			continue
		}
		spans = append(spans, span{u[i].start, u[i+n-1].end})
		i += n - 1
	}
	return spans
}

// maxSeps is how many separators may stand between two digits of a phone
// number: ") " in "(415) 555-0123".
const maxSeps = 3

func isPhoneSep(r rune) bool {
	switch r {
	case ' ', '-', '.', '(', ')', '/', '+', '\u00a0', '\u2009', '\u2010', '\u2011', '\u2012', '\u2013':
		return true
	}
	return false
}

// findDigits adds the spans where the digit sequence d stands as a whole
// number in u, with up to maxSeps separators between any two digits.
func findDigits(spans []span, s string, u []unit, d []rune) []span {
	for i := range u {
		if u[i].r != d[0] || joinedLeft(s, u, i, d[0]) {
			continue
		}
		j, k := i+1, 1
		for k < len(d) {
			p := j
			for p < len(u) && p-j < maxSeps && isPhoneSep(u[p].r) {
				p++
			}
			if p >= len(u) || u[p].r != d[k] {
				break
			}
			j, k = p+1, k+1
		}
		if k == len(d) && !joinedRight(s, u, j, d[len(d)-1]) {
			spans = append(spans, span{u[i].start, u[j-1].end})
		}
	}
	return spans
}

func isLocalPart(r rune) bool { return isWord(r) || r == '.' || r == '+' || r == '-' }
func isDomain(r rune) bool    { return isWord(r) || r == '.' || r == '-' }

// findEmails adds the spans of everything shaped like local@domain.
func findEmails(spans []span, u []unit) []span {
	for k := range u {
		if u[k].r != '@' {
			continue
		}
		a, words := k, 0
		for a > 0 && isLocalPart(u[a-1].r) {
			a--
			if isWord(u[a].r) {
				words++
			}
		}
		b, dwords := k+1, 0
		for b < len(u) && isDomain(u[b].r) {
			if isWord(u[b].r) {
				dwords++
			}
			b++
		}
		if words == 0 || dwords == 0 {
			continue
		}
		spans = append(spans, span{u[a].start, u[b-1].end})
	}
	return spans
}

var (
	dateLike = regexp.MustCompile(`^(?:\d{4}-[01]?\d-[0-3]?\d|[0-3]?\d[./-][01]?\d[./-]\d{2,4}|[01]?\d/[0-3]?\d/\d{2,4})`)
	// IPv4 addresses and versions; five groups and more are phone numbers
	// as the French write them (01.23.45.67.89).
	dotted = regexp.MustCompile(`^\d{1,3}(?:\.\d{1,3}){2,3}$`)
)

// findPhones adds the spans of runs of digits and separators that hold at
// least minPhoneDigits digits and are a token of their own. Dates
// (2026-11-28, 28.11.2026) and dotted numbers (127.0.0.1, 1.2.3) stay.
func findPhones(spans []span, s string, u []unit) []span {
	skipToken := func(i int) int {
		for i++; i < len(u) && isWord(u[i].r); i++ {
		}
		return i
	}
	for i := 0; i < len(u); {
		r := u[i].r
		if !isDigit(r) && !((r == '+' || r == '(') && i+1 < len(u) && isDigit(u[i+1].r)) {
			i++
			continue
		}
		if wordBefore(s, u, i) {
			if isDigit(r) {
				i = skipToken(i) // inside a token: 0x1234567, id_1234567
			} else {
				i++ // "A(0123456": the digits start a token of their own
			}
			continue
		}
		j, last, digits, seps := i, -1, 0, 0
		var text strings.Builder
		for ; j < len(u); j++ {
			r := u[j].r
			if isDigit(r) {
				if j == i || !isDigit(u[j-1].r) {
					e := j
					for e < len(u) && isDigit(u[e].r) {
						e++
					}
					if wordAt(s, u, e) {
						break // this group belongs to a token: 1234567ms, 2nd
					}
				}
				digits, seps, last = digits+1, 0, j
			} else if !isPhoneSep(r) || seps == maxSeps {
				break
			} else {
				seps++
			}
			text.WriteRune(r)
		}
		if last < 0 {
			i = skipToken(i)
			continue
		}
		run := text.String()
		run = run[:strings.LastIndexFunc(run, isDigit)+1]
		lead := len(run) - len(strings.TrimLeft(run, "+("))
		if m := dateLike.FindStringIndex(run[lead:]); m != nil {
			if after := lead + m[1]; after == len(run) || !isDigit(rune(run[after])) {
				i += utf8.RuneCountInString(run[:after])
				continue
			}
		}
		if digits >= minPhoneDigits && !dotted.MatchString(run) {
			spans = append(spans, span{u[i].start, u[last].end})
		}
		i = last + 1
	}
	return spans
}

// phoneDigits returns the digit sequences a phone number is written with:
// international (with and without the 00 prefix), national with its trunk
// prefix, the national significant number, and the "+44 (0)7700" mix.
func phoneDigits(v string) []string {
	only := func(s string) string {
		return strings.Map(func(r rune) rune {
			if isDigit(r) {
				return r
			}
			return -1
		}, s)
	}
	intl := only(v)
	var out []string
	add := func(d string) {
		if len(d) >= 6 && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	add(intl)
	n, err := phonenumbers.Parse(v, "")
	if err != nil {
		return out
	}
	add("00" + intl)
	add("011" + intl)
	nsn := phonenumbers.GetNationalSignificantNumber(n)
	national := only(phonenumbers.Format(n, phonenumbers.NATIONAL))
	add(nsn)
	add(national)
	if trunk, ok := strings.CutSuffix(national, nsn); ok && trunk != "" {
		add(strconv.Itoa(int(n.GetCountryCode())) + trunk + nsn)
	}
	return out
}
