package lethe

import (
	"errors"
	"fmt"
)

// Error codes. Each API profile maps them to its own status codes and body
// shapes in exactly one place; messages are safe to show to callers and
// never contain identity values or secrets.
const (
	EINVALID     = "invalid_request"        // malformed or invalid input
	EUNAUTH      = "unauthorized"           // missing or bad credentials
	EFORBIDDEN   = "forbidden"              // authenticated but not allowed
	ENOTFOUND    = "not_found"              // no such resource (for this caller)
	ECONFLICT    = "conflict"               // state forbids the operation
	ETOOLARGE    = "payload_too_large"      // body over the limit
	EUNSUPPORTED = "unsupported_media_type" // wrong Content-Type
	ERATELIMIT   = "rate_limited"           // too many requests
	EUNAVAILABLE = "unavailable"            // a dependency is down
	EINTERNAL    = "internal"               // anything else; details only in logs
)

// Error is the one error type whose code and message may cross the API
// boundary. Any other error becomes EINTERNAL with a generic message.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("lethe: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, EINTERNAL for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the *Error in err's chain, or a
// generic text for other errors so internal details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
