package pipeline

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
)

// maxErrorLen bounds a stored error message; connector errors can carry
// whole response bodies.
const maxErrorLen = 500

const redacted = "<redacted>"

// redact turns err into a message safe to store, log and hand to River
// (which keeps job errors in its table): every identity value of the
// subject is scrubbed out of it. Connectors must not put values into errors
// in the first place; this is the defense in depth for the ones that do
// (a driver echoing a failed statement, an API echoing the request).
func redact(err error, ids []lethe.Identity) string {
	if err == nil {
		return ""
	}
	return redactString(err.Error(), ids)
}

func redactString(msg string, ids []lethe.Identity) string {
	// Longest first, so a value that is part of a longer one cannot leave
	// the rest of the longer one behind.
	var values []string
	for _, id := range ids {
		v := strings.TrimSpace(id.Value)
		if v == "" {
			continue
		}
		values = append(values, v)
		// Phones also appear without their "+" (E.164 digits, or "00"
		// prefixed) in other systems' messages.
		if id.Type == lethe.IdentityPhone && strings.HasPrefix(v, "+") && len(v) > 1 {
			values = append(values, v[1:])
		}
	}
	slices.SortFunc(values, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, v := range values {
		// Case-insensitive: emails are stored lower-cased but a system may
		// echo them as the subject typed them.
		msg = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(v)).ReplaceAllLiteralString(msg, redacted)
	}
	if len(msg) > maxErrorLen {
		// Cut after scrubbing: a cut taken first could split a value so
		// that the remaining half no longer matches.
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "..."
	}
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "?")
	}
	return msg
}
