package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

type finishArgs struct {
	RequestID string `json:"request_id"`
}

func (finishArgs) Kind() string { return "finish" }

// finishWorker does what pipeline steps do: lock the request, move it on,
// audit it and complete its own job, all in one store transaction.
type finishWorker struct {
	river.WorkerDefaults[finishArgs]
	s    store.Store
	errs *atomic.Int64
}

func (w *finishWorker) Work(ctx context.Context, job *river.Job[finishArgs]) error {
	err := w.s.InTx(ctx, func(tx store.Tx) error {
		r, err := tx.LockRequest(ctx, job.Args.RequestID)
		if err != nil {
			return err
		}
		now := time.Now()
		if _, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{ID: r.ID, From: []lethe.Status{lethe.StatusReceived}, To: lethe.StatusCompleted, ToStage: lethe.StageDone, At: now}); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: now, Actor: lethe.ActorSystem, Type: "request.completed"}); err != nil {
			return err
		}
		_, err = river.JobCompleteTx[*riversqlite.Driver](ctx, tx.Driver().(*sql.Tx), job)
		return err
	})
	if err != nil {
		w.errs.Add(1)
	}
	return err
}

// TestSharedWithRiver backs the DefaultMaxOpenConns decision: River polls,
// fetches and completes jobs on the store's pool while intake-like writers
// insert requests and jobs in store transactions and readers list and
// rate-limit. Nothing may fail with SQLITE_BUSY and nothing may hang.
func TestSharedWithRiver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openStore(t, testdb.SQLitePath(t)) // the default pool size, as served
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	driver := riversqlite.New(s.DB())
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}

	var workErrs atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &finishWorker{s: s, errs: &workErrs})
	client, err := river.NewClient(driver, &river.Config{
		Logger:            slog.New(slog.DiscardHandler),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 8}},
		Workers:           workers,
		FetchPollInterval: 10 * time.Millisecond,
		FetchCooldown:     2 * time.Millisecond,
		PollOnly:          true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			t.Errorf("stop river: %v", err)
		}
	}()

	const producers, perProducer = 4, 12
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				id, _ := uuid.NewV7()
				now := time.Now()
				r := &lethe.Request{
					ID: id.String(), ClientID: "c", Regulation: lethe.GDPR, Status: lethe.StatusReceived, Stage: lethe.StageResolve,
					Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprintf("u-%d-%d", p, i)}},
					SubjectKey: fmt.Sprintf("s-%d-%d", p, i),
					ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
				}
				err := s.InTx(ctx, func(tx store.Tx) error {
					if err := tx.CreateRequest(ctx, r); err != nil {
						return err
					}
					if err := tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: now, Actor: lethe.ActorClient, ActorID: "c", Type: "request.received"}); err != nil {
						return err
					}
					_, err := client.InsertTx(ctx, tx.Driver().(*sql.Tx), finishArgs{RequestID: r.ID}, nil)
					return err
				})
				if err != nil {
					t.Errorf("intake: %v", err)
					return
				}
			}
		})
	}
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stopReaders:
					return
				default:
				}
				if _, _, err := s.ListRequests(ctx, store.ListFilter{Scope: store.Scope{All: true}, Limit: 20}); err != nil {
					t.Errorf("list: %v", err)
					return
				}
				if _, _, err := s.TakeRateLimit(ctx, store.TakeRateLimitParams{Key: fmt.Sprintf("key-%d", i), Limit: 1000000, Window: time.Minute, Block: time.Minute, Now: time.Now()}); err != nil {
					t.Errorf("rate limit: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()

	deadline := time.Now().Add(90 * time.Second)
	for {
		counts, err := s.CountRequestsByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[lethe.StatusCompleted] == producers*perProducer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests not all completed: %v", counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stopReaders)
	readers.Wait()
	if n := workErrs.Load(); n != 0 {
		t.Errorf("%d job attempts failed", n)
	}
}
