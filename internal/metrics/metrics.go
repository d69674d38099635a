// Package metrics exposes lethe's Prometheus metrics on a registry of its
// own (never the global default one, so tests and embedders get exactly
// lethe's series and nothing registered by a dependency).
//
// Label values are targets from the data map, request and task states, and
// HTTP route patterns: small, fixed sets. Nothing that names a data subject
// or a client may become a label value: metrics are scraped into systems
// that keep them for months and are read by many people.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lethe-privacy/lethe"
)

// Options configures New. Every field is optional.
type Options struct {
	// CountRequests returns how many requests are in each status, read on
	// every scrape for lethe_requests; pass the store's
	// CountRequestsByStatus. Nil leaves lethe_requests out.
	CountRequests func(ctx context.Context) (map[lethe.Status]int64, error)
	// QueueDepth returns how many jobs wait to run, read on every scrape
	// for lethe_queue_depth. Nil leaves lethe_queue_depth out.
	QueueDepth func(ctx context.Context) (int64, error)
	// CountDeadlines returns how many open requests are due soon and how
	// many are overdue, read on every scrape for lethe_requests_due_soon
	// and lethe_requests_overdue (deadlines.go). Nil leaves them out.
	CountDeadlines func(ctx context.Context) (dueSoon, overdue int64, err error)
	// ScrapeTimeout bounds each of CountRequests and QueueDepth on a
	// scrape, so a slow database makes a series go missing instead of the
	// scrape hanging. Default 2s.
	ScrapeTimeout time.Duration
	// Targets are the data map's target names. Their task counters start
	// at zero, so rate() and increase() work from the first failure on
	// instead of missing it. Default none (series appear on first use).
	Targets []string
	// Logger receives scrape errors (a failed CountRequests or QueueDepth
	// included). Default slog.Default().
	Logger *slog.Logger
}

// Metrics records lethe's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	tasksFinished    *prometheus.CounterVec
	taskDuration     *prometheus.HistogramVec
	taskAttempts     *prometheus.HistogramVec
	requestsFinished *prometheus.CounterVec
	httpRequests     *prometheus.CounterVec
	httpDuration     *prometheus.HistogramVec
}

// New creates the metrics and their registry.
func New(opts Options) *Metrics {
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		tasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_tasks_finished_total",
			Help: "Tasks (one request on one target) that reached a final state.",
		}, []string{"target", "state"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lethe_task_duration_seconds",
			Help: "Time from a task's first attempt to its final state, retries included.",
			// Tasks range from a cache delete (milliseconds) to a large
			// table erased in batches across retries (an hour or more).
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600},
		}, []string{"target", "state"}),
		taskAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lethe_task_attempts",
			Help:    "Attempts a task took to reach its final state.",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50},
		}, []string{"target", "state"}),
		requestsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_requests_finished_total",
			Help: "Deletion requests that reached a final status.",
		}, []string{"status"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lethe_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	m.reg.MustRegister(
		m.tasksFinished, m.taskDuration, m.taskAttempts, m.requestsFinished,
		m.httpRequests, m.httpDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	sc := &scrapeCollector{
		countRequests: opts.CountRequests,
		queueDepth:    opts.QueueDepth,
		deadlines:     opts.CountDeadlines,
		timeout:       opts.ScrapeTimeout,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lethe_metrics_scrape_errors_total",
			Help: "Scrape-time reads (requests by status, queue depth) that failed or timed out; their series are missing from that scrape.",
		}, []string{"collector"}),
	}
	m.reg.MustRegister(sc)

	// Zeroed series: an alert on increase(...{state="failed"}[1h]) must see
	// the first failure, which needs a 0 before it.
	for _, s := range []lethe.Status{lethe.StatusCompleted, lethe.StatusFailed, lethe.StatusCanceled} {
		m.requestsFinished.WithLabelValues(string(s))
	}
	for _, t := range opts.Targets {
		for _, s := range []lethe.TaskState{lethe.TaskDone, lethe.TaskFailed, lethe.TaskSkipped} {
			m.tasksFinished.WithLabelValues(t, string(s))
		}
	}
	if sc.countRequests != nil {
		sc.errors.WithLabelValues("requests")
	}
	if sc.queueDepth != nil {
		sc.errors.WithLabelValues("queue_depth")
	}
	if sc.deadlines != nil {
		sc.errors.WithLabelValues("deadlines")
	}

	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing read drops its own series, not the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{opts.Logger},
		// Each scrape queries the database; a flood of scrapes must not
		// become a flood of queries.
		MaxRequestsInFlight: 2,
		Registry:            m.reg,
	})
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// TaskFinished records a task that reached state after attempts attempts,
// d after its first attempt started. target is the data map's target name.
func (m *Metrics) TaskFinished(target string, state lethe.TaskState, attempts int, d time.Duration) {
	st := taskState(state)
	m.tasksFinished.WithLabelValues(target, st).Inc()
	m.taskDuration.WithLabelValues(target, st).Observe(d.Seconds())
	if attempts > 0 {
		m.taskAttempts.WithLabelValues(target, st).Observe(float64(attempts))
	}
}

// RequestFinished records a request that reached status.
func (m *Metrics) RequestFinished(status lethe.Status) {
	s := string(status)
	if !status.Valid() {
		s = "other" // keep label values to the known set
	}
	m.requestsFinished.WithLabelValues(s).Inc()
}

// HTTPRequest records one served HTTP request. route must be the matched
// ServeMux pattern (http.Request.Pattern, e.g. "GET /v1/requests/{id}"),
// never the URL path, which carries ids; "" (nothing matched) is recorded
// as "unmatched".
func (m *Metrics) HTTPRequest(route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

func taskState(s lethe.TaskState) string {
	switch s {
	case lethe.TaskPending, lethe.TaskRunning, lethe.TaskDone, lethe.TaskFailed, lethe.TaskSkipped:
		return string(s)
	}
	return "other"
}

// scrapeCollector reads the gauges that live in the database at scrape
// time, so they are right however many lethe processes share it and
// nothing has to keep them in step on every change.
type scrapeCollector struct {
	countRequests func(ctx context.Context) (map[lethe.Status]int64, error)
	queueDepth    func(ctx context.Context) (int64, error)
	deadlines     func(ctx context.Context) (dueSoon, overdue int64, err error)
	timeout       time.Duration
	errors        *prometheus.CounterVec
}

var (
	requestsDesc = prometheus.NewDesc("lethe_requests",
		"Deletion requests by status, read from the database at scrape time.",
		[]string{"status"}, nil)
	queueDepthDesc = prometheus.NewDesc("lethe_queue_depth",
		"Jobs waiting to run, read from the database at scrape time.",
		nil, nil)
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	c.errors.Describe(ch)
	if c.countRequests != nil {
		ch <- requestsDesc
	}
	if c.queueDepth != nil {
		ch <- queueDepthDesc
	}
	if c.deadlines != nil {
		ch <- dueSoonDesc
		ch <- overdueDesc
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.countRequests != nil {
		c.collectRequests(ch)
	}
	if c.queueDepth != nil {
		c.collectQueueDepth(ch)
	}
	if c.deadlines != nil {
		c.collectDeadlines(ch)
	}
	c.errors.Collect(ch)
}

func (c *scrapeCollector) collectRequests(ch chan<- prometheus.Metric) {
	// Collect has no context; the timeout is the only bound on a slow
	// database.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.countRequests(ctx)
	if err != nil {
		c.failed(ch, "requests", requestsDesc, err)
		return
	}
	// Every status, zero included, so a status that empties out reads 0
	// instead of keeping its last value in dashboards.
	for _, s := range lethe.Statuses {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

func (c *scrapeCollector) collectQueueDepth(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.queueDepth(ctx)
	if err != nil {
		c.failed(ch, "queue_depth", queueDepthDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n))
}

// failed counts a failed read. The invalid metric makes the registry
// report the error, which the handler logs, while the scrape goes on
// without the series.
func (c *scrapeCollector) failed(ch chan<- prometheus.Metric, name string, desc *prometheus.Desc, err error) {
	c.errors.WithLabelValues(name).Inc()
	ch <- prometheus.NewInvalidMetric(desc, fmt.Errorf("read %s: %w", name, err))
}

// promLogger gives promhttp's error log to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error("metrics: serve", "err", fmt.Sprint(v...))
}
