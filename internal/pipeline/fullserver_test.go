package pipeline

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// What `lethe serve` does at start (open the store, migrate it and River,
// start the pipeline) succeeds on a role at its CONNECTION LIMIT: each
// step is begun with every slot held by others, freed one by one a little
// later, and waits instead of failing. The request run after that
// completes with no failed attempt.
func TestStartWaitsWhileServerFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const limit = 4
	dsn := testdb.PostgresRole(t, testdb.PostgresDSN(t), limit)
	var logs testdb.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var st *postgres.Store
	// full runs step with the role's every slot taken by others (the
	// store's idle connections closed first), freeing them one by one from
	// 300ms on, and checks that step waited as what.
	full := func(what string, step func()) {
		t.Helper()
		if st != nil {
			st.Pool().Reset()
		}
		release := testdb.HoldPostgres(t, dsn, limit)
		for i := range limit {
			time.AfterFunc(time.Duration(i+1)*300*time.Millisecond, func() { release(i) })
		}
		before := strings.Count(logs.String(), `"what":"`+what+`"`)
		step()
		if strings.Count(logs.String(), `"what":"`+what+`"`) == before {
			t.Fatalf("%s never met the full server (the test proves nothing):\n%s", what, logs.String())
		}
	}

	full("postgres store", func() {
		st = testdb.OpenPostgres(t, dsn, postgres.Options{MaxConns: limit, Log: log})
		if err := st.Migrate(ctx); err != nil {
			t.Fatalf("migrate store: %v", err)
		}
	})
	full("job queue migrations", func() {
		if err := migrate(ctx, st, log); err != nil {
			t.Fatalf("migrate job queue: %v", err)
		}
	})
	target := newMemTarget()
	target.put(email, 2)
	p, err := New(testConfig(), st, []Target{{"shop", target}}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	full("job queue", func() { startBuilt(t, p) })

	r := waitDone(t, st, submit(t, st, p, email), lethe.StatusCompleted)
	if got := taskOf(t, r, "shop"); got.State != lethe.TaskDone || got.Attempts != 1 {
		t.Errorf("task: %s after %d attempts, want done after 1", got.State, got.Attempts)
	}
	if target.held(email) != 0 {
		t.Error("rows left in the target")
	}
	if strings.Contains(logs.String(), "giving up") {
		t.Errorf("a wait gave up:\n%s", logs.String())
	}
}
