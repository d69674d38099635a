package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lethe-privacy/lethe"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrape serves one GET through h and returns the series of the text
// format, keyed by the line's series exactly as written, e.g.
// `lethe_tasks_finished_total{state="done",target="shop"}` (the client
// library writes labels sorted by name).
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape status %d: %s", rec.Code, rec.Body)
	}
	return parseText(t, rec.Body)
}

func parseText(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// check fails for each series in want that is missing or has another value.
func check(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("series %s missing", k)
		case g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSeries(t *testing.T) {
	t.Parallel()
	m := New(Options{
		CountRequests: func(context.Context) (map[lethe.Status]int64, error) {
			return map[lethe.Status]int64{lethe.StatusReceived: 3, lethe.StatusCompleted: 41}, nil
		},
		QueueDepth: func(context.Context) (int64, error) { return 7, nil },
		Targets:    []string{"shop", "sessions"},
		Logger:     quietLogger(),
	})

	m.TaskFinished("shop", lethe.TaskDone, 1, 1500*time.Millisecond)
	m.TaskFinished("shop", lethe.TaskDone, 3, 500*time.Millisecond)
	m.TaskFinished("shop", lethe.TaskFailed, 10, 2*time.Hour)
	m.RequestFinished(lethe.StatusCompleted)
	m.RequestFinished(lethe.StatusCompleted)
	m.RequestFinished(lethe.Status("bogus"))
	m.HTTPRequest("POST /user_deletion_requests", 200, 20*time.Millisecond)
	m.HTTPRequest("POST /user_deletion_requests", 429, 10*time.Millisecond)
	m.HTTPRequest("", 404, time.Millisecond)

	got := scrape(t, m.Handler())
	check(t, got, map[string]float64{
		`lethe_requests{status="received"}`:  3,
		`lethe_requests{status="running"}`:   0,
		`lethe_requests{status="completed"}`: 41,
		`lethe_requests{status="failed"}`:    0,
		`lethe_requests{status="canceled"}`:  0,
		`lethe_queue_depth`:                  7,

		`lethe_requests_finished_total{status="completed"}`: 2,
		`lethe_requests_finished_total{status="failed"}`:    0,
		`lethe_requests_finished_total{status="canceled"}`:  0,
		`lethe_requests_finished_total{status="other"}`:     1,

		`lethe_tasks_finished_total{state="done",target="shop"}`:       2,
		`lethe_tasks_finished_total{state="failed",target="shop"}`:     1,
		`lethe_tasks_finished_total{state="skipped",target="shop"}`:    0,
		`lethe_tasks_finished_total{state="done",target="sessions"}`:   0,
		`lethe_tasks_finished_total{state="failed",target="sessions"}`: 0,

		`lethe_task_duration_seconds_count{state="done",target="shop"}`:         2,
		`lethe_task_duration_seconds_sum{state="done",target="shop"}`:           2,
		`lethe_task_duration_seconds_bucket{state="done",target="shop",le="1"}`: 1,
		`lethe_task_duration_seconds_bucket{state="done",target="shop",le="5"}`: 2,
		`lethe_task_duration_seconds_sum{state="failed",target="shop"}`:         7200,
		`lethe_task_attempts_sum{state="done",target="shop"}`:                   4,
		`lethe_task_attempts_bucket{state="failed",target="shop",le="10"}`:      1,
		`lethe_task_attempts_bucket{state="failed",target="shop",le="5"}`:       0,

		`lethe_http_requests_total{code="200",route="POST /user_deletion_requests"}`:      1,
		`lethe_http_requests_total{code="429",route="POST /user_deletion_requests"}`:      1,
		`lethe_http_requests_total{code="404",route="unmatched"}`:                         1,
		`lethe_http_request_duration_seconds_count{route="POST /user_deletion_requests"}`: 2,
		`lethe_http_request_duration_seconds_sum{route="POST /user_deletion_requests"}`:   0.03,

		`lethe_metrics_scrape_errors_total{collector="requests"}`:    0,
		`lethe_metrics_scrape_errors_total{collector="queue_depth"}`: 0,
	})
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("go runtime metrics missing")
	}

	// The store is asked again on every scrape, not cached.
	got = scrape(t, m.Handler())
	check(t, got, map[string]float64{`lethe_queue_depth`: 7})
}

// TestScrapeFuncsOptional: without the funcs their series are absent and
// nothing else breaks.
func TestScrapeFuncsOptional(t *testing.T) {
	t.Parallel()
	m := New(Options{Logger: quietLogger()})
	got := scrape(t, m.Handler())
	for k := range got {
		if strings.HasPrefix(k, "lethe_requests{") || k == "lethe_queue_depth" || strings.HasPrefix(k, "lethe_metrics_scrape_errors_total") {
			t.Errorf("unexpected series %s", k)
		}
	}
	check(t, got, map[string]float64{`lethe_requests_finished_total{status="failed"}`: 0})
}

// TestScrapeReadFails: a failing or slow database drops only its own
// series, counts the failure, and the scrape still answers in time.
func TestScrapeReadFails(t *testing.T) {
	t.Parallel()
	m := New(Options{
		CountRequests: func(context.Context) (map[lethe.Status]int64, error) {
			return nil, errors.New("database is locked")
		},
		QueueDepth: func(ctx context.Context) (int64, error) {
			<-ctx.Done() // a query that never answers
			return 0, ctx.Err()
		},
		ScrapeTimeout: 50 * time.Millisecond,
		Logger:        quietLogger(),
	})
	m.RequestFinished(lethe.StatusFailed)

	start := time.Now()
	got := scrape(t, m.Handler())
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("scrape took %s despite the 50ms timeout", d)
	}
	for k := range got {
		if strings.HasPrefix(k, "lethe_requests{") || k == "lethe_queue_depth" {
			t.Errorf("series %s present although its read failed", k)
		}
	}
	check(t, got, map[string]float64{
		`lethe_requests_finished_total{status="failed"}`:             1,
		`lethe_metrics_scrape_errors_total{collector="requests"}`:    1,
		`lethe_metrics_scrape_errors_total{collector="queue_depth"}`: 1,
	})
}

// TestPrivateRegistry: two instances do not share series, which they
// would on the global registry (and registering twice would panic).
func TestPrivateRegistry(t *testing.T) {
	t.Parallel()
	a := New(Options{Logger: quietLogger()})
	b := New(Options{Logger: quietLogger()})
	a.RequestFinished(lethe.StatusCanceled)
	check(t, scrape(t, b.Handler()), map[string]float64{`lethe_requests_finished_total{status="canceled"}`: 0})
	check(t, scrape(t, a.Handler()), map[string]float64{`lethe_requests_finished_total{status="canceled"}`: 1})
}

func TestTaskStateLabelIsBounded(t *testing.T) {
	t.Parallel()
	m := New(Options{Logger: quietLogger()})
	m.TaskFinished("shop", lethe.TaskState("alice@example.com"), 0, time.Second)
	got := scrape(t, m.Handler())
	for k := range got {
		if strings.Contains(k, "alice") {
			t.Errorf("free text reached a label: %s", k)
		}
	}
	check(t, got, map[string]float64{`lethe_tasks_finished_total{state="other",target="shop"}`: 1})
}
