package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	dueSoonDesc = prometheus.NewDesc("lethe_requests_due_soon",
		"Open deletion requests due within the warning period (deadlines.warn_before) and not yet overdue, read from the database at scrape time.",
		nil, nil)
	overdueDesc = prometheus.NewDesc("lethe_requests_overdue",
		"Open deletion requests past their due date, read from the database at scrape time.",
		nil, nil)
)

func (c *scrapeCollector) collectDeadlines(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	dueSoon, overdue, err := c.deadlines(ctx)
	if err != nil {
		c.failed(ch, "deadlines", overdueDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(dueSoonDesc, prometheus.GaugeValue, float64(dueSoon))
	ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, float64(overdue))
}
