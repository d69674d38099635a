package redact_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/redact"
)

func TestError(t *testing.T) {
	t.Parallel()
	ids := []lethe.Identity{email}
	err := fmt.Errorf("query: invalid input %q: %w", "alice+tag@example.com", context.Canceled)
	r := redact.Error(err, ids)
	if strings.Contains(r.Error(), "alice") || !errors.Is(r, context.Canceled) {
		t.Errorf("Error = %v (canceled %v)", r, errors.Is(r, context.Canceled))
	}
	if u := errors.Unwrap(r); u != context.Canceled {
		t.Errorf("unwraps to %v, want only the context error", u)
	}
	d := redact.Error(fmt.Errorf("call alice+tag@example.com: %w", context.DeadlineExceeded), ids)
	if !errors.Is(d, context.DeadlineExceeded) {
		t.Errorf("deadline lost: %v", d)
	}
	plain := errors.New("no values here")
	if redact.Error(plain, ids) != plain {
		t.Error("an error without values was replaced")
	}
	if redact.Error(nil, ids) != nil {
		t.Error("nil error became non-nil")
	}
}
