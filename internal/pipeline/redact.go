package pipeline

import (
	"github.com/lethe-privacy/lethe"
	scrub "github.com/lethe-privacy/lethe/redact"
)

// maxErrorLen bounds a stored error message; connector errors can carry
// whole response bodies.
const maxErrorLen = scrub.MaxLen

const redacted = scrub.Placeholder

// redact turns err into a message safe to store, log and hand to River
// (which keeps job errors in its table): every form of the subject's
// identities, and any email address or phone number, is scrubbed out of it.
// Connectors must not put values into errors in the first place; this is
// the defense in depth for the ones that do (a driver echoing a failed
// statement, an API echoing the request).
func redact(err error, ids []lethe.Identity) string {
	if err == nil {
		return ""
	}
	return redactString(err.Error(), ids)
}

func redactString(msg string, ids []lethe.Identity) string { return scrub.String(msg, ids) }
