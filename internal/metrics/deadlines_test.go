package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDeadlineGauges(t *testing.T) {
	t.Parallel()
	m := New(Options{CountDeadlines: func(context.Context) (int64, int64, error) { return 3, 2, nil }})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"lethe_requests_due_soon 3\n", "lethe_requests_overdue 2\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
