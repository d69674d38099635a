package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one configuration field. Msg never holds
// the field's value: after ${VAR} expansion a value may be a secret, and
// errors end up in logs.
type FieldError struct {
	Path string // e.g. "workers.concurrency" or "targets[1].dsn"
	Msg  string // what is wrong, e.g. "must be between 1 and 1000"
	Line int    // line in the file; 0 when unknown (env override, built in code)
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", e.Path, e.Msg, e.Line)
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in one configuration. Load and Validate
// collect them all so an operator fixes the file in one round, not one
// error per restart.
type Errors []*FieldError

func (es Errors) Error() string {
	switch len(es) {
	case 0:
		return "invalid configuration"
	case 1:
		return "invalid configuration: " + es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problems):", len(es))
	for _, e := range es {
		b.WriteString("\n\t")
		b.WriteString(e.Error())
	}
	return b.String()
}

// errorList accumulates FieldErrors while decoding and validating.
type errorList struct {
	errs Errors
}

func (l *errorList) add(path string, line int, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	l.errs = append(l.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Line: line})
}

// err returns nil when nothing was added, so callers can return it as is.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs
}
