package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// DefaultBatchesPostgres is how many batches commit at once on PostgreSQL.
const DefaultBatchesPostgres = 8

// DefaultMaxBatch bounds a group commit: large enough that a burst shares
// few commits, small enough that one batch's transaction stays short.
const DefaultMaxBatch = 64

// Group commit: submissions that arrive while a transaction is committing
// wait, and the next transaction stores all of them (up to max), each with
// its first job and audit event as alone; the batch's jobs are inserted in
// one statement and its audit events in another (admit). A commit is one
// fsync on SQLite and one round trip plus WAL flush on PostgreSQL, which is
// most of an intake's cost; sharing it is what lets intake keep up with a
// burst.
//
// Guarantees kept:
//   - Every caller is answered only after the transaction holding its
//     request committed; a crash before that commit loses the whole batch,
//     and none of its callers was told it was accepted.
//   - One submission cannot fail the others: an answer of its own (an
//     idempotency conflict) leaves the transaction usable and is given
//     after the commit like the rest; a database error rolls the batch
//     back, the submission that hit it is stored alone through the
//     unbatched path (with its retry on a unique-index conflict) and the
//     others are stored again in a new batch.
//   - Submissions of one batch see each other: a second submission for the
//     same subject, or with the same idempotency key, is answered with the
//     first one's request, as it would be one transaction later.
//
// There is no background goroutine: a submitter that finds fewer batches
// running than allowed leads, commits what is queued, answers everyone in it and
// hands the lead to the oldest waiting submitter, then returns.
type batcher struct {
	max int
	// leaders is how many batches may commit at once: one on SQLite,
	// where writes take turns on one lock anyway; several on PostgreSQL,
	// where one batch at a time would leave the pool's other connections
	// idle while a batch's statements make their round trips one by one.
	leaders int
	mu      sync.Mutex
	queue   []*pending
	leading int
}

type pending struct {
	ctx  context.Context
	r    *lethe.Request
	done chan answer // buffered: the leader never waits on a caller
}

type answer struct {
	lead    bool // take the lead instead: nothing was stored yet
	got     *lethe.Request
	outcome Outcome
	err     error
}

func (s *Service) submitBatched(ctx context.Context, r *lethe.Request) (*lethe.Request, Outcome, error) {
	p := &pending{ctx: ctx, r: r, done: make(chan answer, 1)}
	b := s.batch
	b.mu.Lock()
	b.queue = append(b.queue, p)
	lead := b.leading < b.leaders
	if lead {
		b.leading++
	}
	b.mu.Unlock()
	if lead {
		s.lead(ctx, nil)
	}
	for {
		a := <-p.done
		if a.lead {
			// Handed the lead: p left the queue then, so it starts the
			// batch, and no other leader can answer it meanwhile.
			s.lead(ctx, p)
			continue
		}
		return a.got, a.outcome, a.err
	}
}

// lead commits one batch (first, if given, then the oldest queued), then
// passes the lead to the oldest waiting submitter, taking it off the queue
// so that it is handed the lead once and answered once.
func (s *Service) lead(ctx context.Context, first *pending) {
	b := s.batch
	b.mu.Lock()
	var batch []*pending
	if first != nil {
		batch = append(batch, first)
	}
	n := min(len(b.queue), b.max-len(batch))
	batch = append(batch, b.queue[:n]...)
	b.queue = b.queue[n:]
	b.mu.Unlock()

	// The batch belongs to every caller in it: the leader's own cancel
	// must not abort the others' transaction.
	s.commitBatch(context.WithoutCancel(ctx), batch)

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.leading--
		return
	}
	next := b.queue[0]
	b.queue = b.queue[1:]
	next.done <- answer{lead: true} // buffered, and next has nothing else coming
}

func (s *Service) commitBatch(ctx context.Context, batch []*pending) {
	live := batch[:0]
	for _, p := range batch {
		// A caller that gave up before its turn is not stored: it was
		// never answered, and storing it now would accept a request its
		// client believes failed.
		if err := p.ctx.Err(); err != nil {
			p.done <- answer{err: err}
			continue
		}
		live = append(live, p)
	}
	for len(live) > 0 {
		answers := make([]answer, len(live))
		failed := -1
		shared := false // the batch's shared inserts failed, not one submission's
		err := s.store.InTx(ctx, func(tx store.Tx) error {
			var (
				received []*lethe.AuditEvent
				of       []int // of[j]: the submission of received[j]
			)
			if ts, ok := tx.(indexedTx); ok {
				var err error
				received, of, failed, err = s.storeAll(ctx, ts, live, answers)
				if err != nil {
					shared = failed < 0
					return err
				}
			} else {
				for i, p := range live {
					// The submitter's own context values (who submits it)
					// with the batch's lifetime.
					got, outcome, ev, err := s.storeIn(context.WithoutCancel(p.ctx), tx, p.r)
					var le *lethe.Error
					if err != nil && !errors.As(err, &le) {
						failed = i
						return err
					}
					answers[i] = answer{got: got, outcome: outcome, err: err}
					if ev != nil {
						received = append(received, ev)
						of = append(of, i)
					}
				}
			}
			// Every created request's job and event in one insert each.
			at, err := s.admit(ctx, tx, received)
			switch {
			case err == nil:
			case at >= 0:
				failed = of[at]
			default:
				shared = true
			}
			return err
		})
		if err == nil {
			for i, p := range live {
				p.done <- answers[i]
			}
			return
		}
		if shared {
			// Not one submission's fault that can be told apart: each is
			// stored alone, and answered with its own outcome.
			for _, p := range live {
				got, outcome, err := s.submitAlone(context.WithoutCancel(p.ctx), p.r)
				p.done <- answer{got: got, outcome: outcome, err: err}
			}
			return
		}
		if failed < 0 {
			// The commit itself failed: nothing is known to be stored, so
			// nobody is told it was.
			for _, p := range live {
				p.done <- answer{err: err}
			}
			return
		}
		p := live[failed]
		got, outcome, err := s.submitAlone(context.WithoutCancel(p.ctx), p.r)
		p.done <- answer{got: got, outcome: outcome, err: err}
		live = append(live[:failed:failed], live[failed+1:]...)
	}
}

// indexedTx is a transaction that stores a batch's requests in one insert
// that lets the unique indexes refuse the ones an earlier request stands
// for, and reads what refused them in one statement (the SQL stores' is).
type indexedTx interface {
	store.Tx
	CreateNewRequests(ctx context.Context, rs []*lethe.Request) ([]bool, error)
	RequestsInTheWay(ctx context.Context, rs []*lethe.Request) ([]*lethe.Request, error)
}

// errOutOfOrder: the database's answer to a batch's insert does not match
// the submissions taken one by one in order; nothing of it is kept.
var errOutOfOrder = errors.New("intake: a batch's insert did not keep the submissions' order")

// storeAll stores the batch live in tx as storeIn would one submission
// after another, but without reading first: the unique indexes of open
// subjects and idempotency keys are what storeIn's two lookups ask, so
// one insert of every submission, in order, stores exactly the ones
// storeIn would create, and a submission refused by a request stored
// before it (or earlier in the batch) is answered from one read of the
// refusing requests. That read is replayed here in the batch's order with
// storeIn's rules, so a duplicate or a reused key within the batch gets
// the answer it gets across batches.
//
// It fills answers and returns the received events of the requests it
// created, with of[j] the submission of received[j]. On an error, failed
// is the submission to store alone (a refusal nothing read explains, such
// as a request that closed between the insert and the read), or -1 when
// no one submission can be told apart.
func (s *Service) storeAll(ctx context.Context, tx indexedTx, live []*pending, answers []answer) (received []*lethe.AuditEvent, of []int, failed int, err error) {
	rs := make([]*lethe.Request, len(live))
	for i, p := range live {
		rs[i] = p.r
	}
	stored, err := tx.CreateNewRequests(ctx, rs)
	if err != nil {
		return nil, nil, -1, err
	}
	var refused []*lethe.Request
	for i, r := range rs {
		if !stored[i] {
			refused = append(refused, r)
		}
	}
	if len(refused) == 0 {
		// Nothing refused, so nothing in the batch stood for another
		// either: each is what storeIn would have created.
		for i, r := range rs {
			answers[i] = answer{got: r, outcome: Created}
			received = append(received, s.receivedEvent(context.WithoutCancel(live[i].ctx), r))
			of = append(of, i)
		}
		return received, of, -1, nil
	}
	inTheWay, err := tx.RequestsInTheWay(ctx, refused)
	if err != nil {
		return nil, nil, -1, err
	}
	// What storeIn's lookups would find, request by request: first the
	// requests stored before the batch, then each the batch creates.
	type subject struct{ client, key string }
	read := make(map[string]*lethe.Request, len(inTheWay))
	for _, r := range inTheWay {
		read[r.ID] = r
	}
	ours := make(map[string]bool, len(rs))
	for i, r := range rs {
		if stored[i] {
			ours[r.ID] = true
		}
	}
	byKey := map[subject]*lethe.Request{}
	open := map[subject]*lethe.Request{}
	for _, r := range inTheWay {
		if ours[r.ID] {
			continue
		}
		if r.IdempotencyKey != "" {
			byKey[subject{r.ClientID, r.IdempotencyKey}] = r
		}
		if k := (subject{r.ClientID, r.SubjectKey}); r.Status.Open() && (open[k] == nil || r.ID > open[k].ID) {
			open[k] = r // the newest, as FindOpenRequest
		}
	}
	for i, r := range rs {
		var (
			prev    *lethe.Request
			outcome Outcome
		)
		if r.IdempotencyKey != "" {
			if prev = byKey[subject{r.ClientID, r.IdempotencyKey}]; prev != nil {
				outcome = Replayed
			}
		}
		if prev == nil {
			if prev = open[subject{r.ClientID, r.SubjectKey}]; prev != nil {
				outcome = Duplicate
			}
		}
		switch {
		case prev == nil && !stored[i]:
			return nil, nil, i, fmt.Errorf("create request: %w", store.ErrConflict)
		case prev != nil && stored[i]:
			return nil, nil, -1, errOutOfOrder
		case prev == nil:
			answers[i] = answer{got: r, outcome: Created}
			received = append(received, s.receivedEvent(context.WithoutCancel(live[i].ctx), r))
			of = append(of, i)
			// Later submissions see it as they would in the database:
			// storeIn's reads return the stored row.
			row := r
			if got := read[r.ID]; got != nil {
				row = got
			}
			if r.IdempotencyKey != "" {
				byKey[subject{r.ClientID, r.IdempotencyKey}] = row
			}
			open[subject{r.ClientID, r.SubjectKey}] = row
		case outcome == Replayed && !sameSubmission(prev, r):
			answers[i] = answer{err: errKeyReused()}
		default:
			answers[i] = answer{got: prev, outcome: outcome}
		}
	}
	return received, of, -1, nil
}
