package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Deadlines configures the deadline sweep: a periodic job, run by the
// elected leader only, that records once per request an audit event when
// an open request comes within WarnBefore of its due date
// ("request.due_soon") and when it passes it ("request.overdue"), and logs
// how many it found. The counts themselves are read from the database
// whenever they are wanted (metrics, list API), so they are the same on
// every process and never wait for a sweep.
type Deadlines struct {
	// WarnBefore is how long before its due date an open request counts
	// as due soon. Default 168h (7 days).
	WarnBefore time.Duration
	// Interval is how often the sweep runs. Default 10m.
	Interval time.Duration
}

// Defaults of Deadlines.
const (
	DefaultWarnBefore    = 7 * 24 * time.Hour
	DefaultSweepInterval = 10 * time.Minute
)

// sweepBatch bounds one query of the sweep; it loops until nothing is left.
const sweepBatch = 200

const kindDeadlineSweep = "lethe.deadline_sweep"

type deadlineSweepArgs struct{}

func (deadlineSweepArgs) Kind() string { return kindDeadlineSweep }

type deadlineSweepWorker struct {
	river.WorkerDefaults[deadlineSweepArgs]
	p *Pipeline
}

func (w *deadlineSweepWorker) Work(ctx context.Context, _ *river.Job[deadlineSweepArgs]) error {
	_, _, err := w.p.SweepDeadlines(ctx)
	return err
}

func (d *Deadlines) withDefaults() *Deadlines {
	if d == nil {
		return nil
	}
	c := *d
	if c.WarnBefore == 0 {
		c.WarnBefore = DefaultWarnBefore
	}
	if c.Interval == 0 {
		c.Interval = DefaultSweepInterval
	}
	return &c
}

func (d *Deadlines) check() error {
	if d == nil {
		return nil
	}
	if d.WarnBefore < 0 || d.Interval < 0 {
		return errors.New("Deadlines durations must not be negative")
	}
	return nil
}

// deadlineJobs schedules the sweep (see periodicJob: once per interval,
// however many processes share the database).
func (p *Pipeline) deadlineJobs() []*river.PeriodicJob {
	d := p.cfg.Deadlines
	if d == nil {
		return nil
	}
	return []*river.PeriodicJob{periodicJob(d.Interval, deadlineSweepArgs{}, priorityClose)}
}

// SweepDeadlines records a "request.due_soon" or "request.overdue" audit
// event on every open request that newly reached that point, each in the
// transaction that flags the request, and returns how many it flagged. It
// is what the periodic sweep runs; calling it again flags nothing twice.
func (p *Pipeline) SweepDeadlines(ctx context.Context) (dueSoon, overdue int, err error) {
	d := p.cfg.Deadlines
	if d == nil {
		return 0, 0, nil
	}
	now := p.now()
	if overdue, err = p.flagDeadlines(ctx, store.FlagOverdue, now, now, lethe.EventRequestOverdue); err != nil {
		return 0, overdue, err
	}
	if dueSoon, err = p.flagDeadlines(ctx, store.FlagDueSoon, now, now.Add(d.WarnBefore), lethe.EventRequestDueSoon); err != nil {
		return dueSoon, overdue, err
	}
	if dueSoon+overdue > 0 {
		// Counts only: ids would let a log reader line requests up with
		// other records, and they are in the audit log already.
		p.log.Warn("pipeline: requests close to or past their due date",
			slog.Int("newly_due_soon", dueSoon), slog.Int("newly_overdue", overdue))
	}
	return dueSoon, overdue, nil
}

func (p *Pipeline) flagDeadlines(ctx context.Context, flag store.DeadlineFlag, now, before time.Time, event lethe.EventType) (int, error) {
	n := 0
	for {
		ids, err := p.st.UnflaggedDeadlines(ctx, flag, before, sweepBatch)
		if err != nil {
			return n, fmt.Errorf("deadline sweep: %w", err)
		}
		for _, id := range ids {
			flagged := false
			err := p.st.InTx(ctx, func(tx store.Tx) error {
				// Lock first, as every step does, so the flag and its
				// event cannot interleave with a step closing the request.
				req, err := tx.LockRequest(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				ok, err := tx.FlagDeadline(ctx, id, flag, p.now())
				if err != nil || !ok {
					return err
				}
				if flag == store.FlagDueSoon && req.DueAt.Before(now) {
					// Already overdue when first seen (a short deadline, or
					// warn_before raised): the overdue event says it all.
					return nil
				}
				flagged = true
				return p.audit(ctx, tx, id, event, map[string]string{"due_at": req.DueAt.UTC().Format(time.RFC3339)})
			})
			if err != nil {
				return n, fmt.Errorf("deadline sweep: %w", err)
			}
			if flagged {
				n++
			}
		}
		if len(ids) < sweepBatch {
			return n, nil
		}
	}
}

// CountDeadlines returns how many open requests are due soon (within
// Deadlines.WarnBefore, default 7 days) and overdue now, for the metrics.
func (p *Pipeline) CountDeadlines(ctx context.Context) (dueSoon, overdue int64, err error) {
	warn := DefaultWarnBefore
	if p.cfg.Deadlines != nil {
		warn = p.cfg.Deadlines.WarnBefore
	}
	return p.st.CountDeadlines(ctx, p.now(), warn)
}
