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
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// Retention says how long finished requests are kept, for the purge.
// Unlike the rest of Config, zero durations mean what they say.
type Retention struct {
	// RequestDetails is how long a finished request's row (status, tasks,
	// external id, identities' hashes) stays, from its completion; 0
	// purges it at the next run. Its receipt and audit events stay. A
	// purged request's id answers 404; its receipt still answers.
	RequestDetails time.Duration
	// Legal is how long receipts and audit events (which hold no identity)
	// are kept, from the receipt's issue; then they go too.
	Legal time.Duration
	// Register is how long a closed request stays in the request
	// register (store.Register: no identities; id, client, regulation,
	// dates, outcome, per-target states, operator actions), from its
	// closing. The purge of details copies a request into the register
	// in the transaction that deletes it. 0: register rows go at the
	// next run.
	Register time.Duration
	// FailedOpen is how long a failed request nobody closed (still
	// re-drivable, its identities sealed) stays open, from its failure;
	// then the purge closes it for good through the operators' close path
	// (actor system), and RequestDetails runs from that close. The
	// details purge never takes a request that is still open.
	FailedOpen time.Duration
	// Interval is how often the purge runs. Default 1h.
	Interval time.Duration
}

// DefaultPurgeInterval is Retention.Interval's default.
const DefaultPurgeInterval = time.Hour

// purgeBatch bounds one purge query; the purge loops until nothing is due.
const purgeBatch = 200

const kindPurge = "lethe.purge"

// purgeArgs is empty: a purge purges whatever is due when it runs.
type purgeArgs struct{}

func (purgeArgs) Kind() string { return kindPurge }

type purgeWorker struct {
	river.WorkerDefaults[purgeArgs]
	p *Pipeline
}

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[purgeArgs]) error {
	return w.p.purge(ctx)
}

func (r *Retention) check() error {
	if r == nil {
		return nil
	}
	if r.RequestDetails < 0 || r.Legal < 0 || r.Register < 0 || r.FailedOpen < 0 || r.Interval < 0 {
		return errors.New("Retention durations must not be negative")
	}
	return nil
}

// purgeJobs schedules the purge (see periodicJob: once per interval,
// however many processes share the database).
func (p *Pipeline) purgeJobs() []*river.PeriodicJob {
	r := p.cfg.Retention
	if r == nil {
		return nil
	}
	every := r.Interval
	if every == 0 {
		every = DefaultPurgeInterval
	}
	return []*river.PeriodicJob{periodicJob(every, purgeArgs{}, priorityWork+1)}
}

// purge removes what retention says is due: first it closes failed
// requests left open past FailedOpen (so their identities go, and they
// finish like any closed request), then finished requests'
// details (each copied into the register and given a
// lethe.EventRequestPurged audit event, in the transaction that deletes
// it), then register rows past the register period, then receipts and
// audit chains past the legal period.
// Every deletion is idempotent, so a purge cut short is finished by the
// next one.
func (p *Pipeline) purge(ctx context.Context) error {
	r := p.cfg.Retention
	if r == nil {
		return nil
	}
	now := p.now()
	closed, err := p.closeFailedOpen(ctx, now.Add(-r.FailedOpen))
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	details, register, proofs := 0, 0, 0
	for {
		ids, err := p.st.FinishedRequestsBefore(ctx, now.Add(-r.RequestDetails), purgeBatch)
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		for _, id := range ids {
			err := p.st.InTx(ctx, func(tx store.Tx) error {
				// Archive first: the register row is made from the
				// details about to go.
				if ok, err := tx.ArchiveRequest(ctx, id); err != nil || !ok {
					return err
				}
				ok, err := tx.DeleteRequest(ctx, id)
				if err != nil || !ok {
					return err
				}
				details++
				return p.audit(ctx, tx, id, lethe.EventRequestPurged, map[string]string{"retention": r.RequestDetails.String()})
			})
			if err != nil {
				return fmt.Errorf("purge: %w", err)
			}
		}
		if len(ids) < purgeBatch {
			break
		}
	}
	for {
		n, err := p.st.PurgeRegister(ctx, now.Add(-r.Register), purgeBatch)
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		register += n
		if n < purgeBatch {
			break
		}
	}
	for {
		ids, err := p.st.ReceiptsIssuedBefore(ctx, now.Add(-r.Legal), purgeBatch)
		if err != nil {
			return fmt.Errorf("purge: %w", err)
		}
		for _, id := range ids {
			if err := p.st.DeleteProof(ctx, id); err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			proofs++
		}
		if len(ids) < purgeBatch {
			break
		}
	}
	if closed+details+register+proofs > 0 {
		p.log.Info("pipeline: purged finished requests", slog.Int("failed_closed", closed), slog.Int("details", details),
			slog.Int("register", register), slog.Int("receipts_and_audit", proofs))
	}
	return nil
}

// closeFailedOpen closes, as failed for good, every failed request that
// failed before cutoff and that no operator closed or re-drove: the same
// close as an operator's (terminate.Path.Close: audited, receipt issued
// again, identities dropped), by the system, saying which retention ran
// out. A request re-driven or closed meanwhile is left as it is.
func (p *Pipeline) closeFailedOpen(ctx context.Context, cutoff time.Time) (int, error) {
	r := p.cfg.Retention
	n := 0
	for {
		ids, err := p.st.FailedOpenBefore(ctx, cutoff, purgeBatch)
		if err != nil {
			return n, err
		}
		for _, id := range ids {
			err := p.st.InTx(ctx, func(tx store.Tx) error {
				req, err := tx.LockRequest(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				if err != nil || !lethe.Redrivable(req.Status, req.Stage) {
					return err
				}
				tasks, err := tx.ListTasks(ctx, id)
				if err != nil {
					return err
				}
				ok, err := p.end.Close(ctx, tx, req, tasks, terminate.Closing{
					Actor: lethe.ActorSystem, At: p.now(),
					Details: map[string]string{"retention": "failed_open", "failed_open": r.FailedOpen.String()},
				})
				if ok {
					n++
				}
				return err
			})
			if err != nil {
				return n, err
			}
		}
		if len(ids) < purgeBatch {
			return n, nil
		}
	}
}
