package connector

import (
	"context"
	"fmt"
	"strings"
)

// Severity says whether a Problem stops lethe from using the data map.
type Severity string

// Severities of a Problem.
const (
	// SeverityError: an erasure under this map could fail midway or change
	// data the map does not account for. serve refuses to start.
	SeverityError Severity = "error"
	// SeverityWarning: the map works, but may miss personal data or be
	// slow. serve starts and logs it.
	SeverityWarning Severity = "warning"
)

// Problem is one finding of a data map checked against the live system.
// It names where (target, table, column) and never holds a data value.
type Problem struct {
	Severity Severity `json:"severity"`
	Target   string   `json:"target"`
	Table    string   `json:"table,omitempty"`
	Column   string   `json:"column,omitempty"`
	Message  string   `json:"message"`
	// Suggestion is a data map fragment (YAML) that would address the
	// problem, when one can be proposed; names only.
	Suggestion string `json:"suggestion,omitempty"`
}

func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: target %q", p.Severity, p.Target)
	if p.Table != "" {
		fmt.Fprintf(&b, ": table %q", p.Table)
	}
	if p.Column != "" {
		fmt.Fprintf(&b, ": column %q", p.Column)
	}
	b.WriteString(": " + p.Message)
	return b.String()
}

// SchemaChecker is implemented by connectors that can check their data map
// against the live schema beyond what Validate does: constraints and rules
// of the system that would make an erasure fail midway or change what the
// map does not account for. It reports every problem at once; the error is
// for failing to check at all (no connection).
type SchemaChecker interface {
	CheckSchema(ctx context.Context) ([]Problem, error)
}

// Errors returns the problems of SeverityError.
func Errors(ps []Problem) []Problem {
	var out []Problem
	for _, p := range ps {
		if p.Severity == SeverityError {
			out = append(out, p)
		}
	}
	return out
}
